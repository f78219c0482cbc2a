// Voice calls between the two people of a private conversation, with WebRTC: the audio goes from
// browser to browser; Parley carries the signalling (POSTs below the conversation, and signals
// back in each page's held poll, handed over by app.js) and keeps the call's record.
(function () {
  "use strict";

  var supported = !!(window.RTCPeerConnection && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  var RING_MS = 30000;
  var ALIVE_MS = 5000;
  // WebRTC says "disconnected" on a short glitch too; this long without recovering ends the call.
  var LOST_MS = 3000;
  // An answered call that has not connected by then will not (a signal lost on the way).
  var CONNECT_MS = 20000;

  function $(id) {
    return document.getElementById(id);
  }
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // The one call this page is in (or is ringing for), and what it knows of others.
  var call = null;
  // Calls answered elsewhere or over: a late signal about one is ignored.
  var over = {};
  var iceServers = null;

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      // A hang-up sent as the page goes still arrives.
      keepalive: true,
      headers: { "X-CSRF-Token": csrfToken(), "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
  }
  function errorOf(resp, fallback) {
    return resp
      .json()
      .then(function (j) {
        return (j && j.error) || fallback;
      })
      .catch(function () {
        return fallback;
      });
  }
  function url(what) {
    return call.conv + "/calls/" + call.id + "/" + what;
  }

  // --- The panel.
  function show(status, buttons) {
    var panel = $("call");
    if (!panel) return;
    panel.hidden = false;
    $("call-status").textContent = status;
    ["accept", "decline", "mute", "hangup", "close"].forEach(function (b) {
      $("call-" + b).hidden = buttons.indexOf(b) < 0;
    });
    // Focus follows the person's own steps (from Call, or within the panel, whose buttons
    // change); a ring never takes it from what they are typing (the status is announced).
    var first = buttons.length && $("call-" + buttons[0]);
    var active = document.activeElement;
    var ours = active && (active.id === "call-button" || panel.contains(active));
    if (first && ours && (!panel.contains(active) || active.hidden)) first.focus();
  }
  function hide() {
    var panel = $("call");
    if (panel) panel.hidden = true;
    $("call-timer").hidden = true;
  }
  // A closing word ("Call ended", "bob declined"), then the panel goes.
  var closeTimer = null;
  function conclude(text) {
    show(text, ["close"]);
    clearTimeout(closeTimer);
    closeTimer = setTimeout(hide, 6000);
  }

  // --- Ringing: a soft two-tone ring, made here (no sound file), while the panel rings.
  var ringer = null;
  function ring(on) {
    if (ringer) {
      clearInterval(ringer.every);
      ringer.ctx.close().catch(function () {});
      ringer = null;
    }
    if (!on || !window.AudioContext) return;
    try {
      var ctx = new AudioContext();
      var beep = function () {
        [440, 480].forEach(function (f) {
          var o = ctx.createOscillator();
          var g = ctx.createGain();
          g.gain.value = 0.05;
          o.frequency.value = f;
          o.connect(g).connect(ctx.destination);
          o.start();
          o.stop(ctx.currentTime + 1.2);
        });
      };
      beep();
      ringer = { ctx: ctx, every: setInterval(beep, 3000) };
    } catch (e) {
      ringer = null;
    }
  }

  function microphoneError(err) {
    if (!err || !err.name) return "The microphone could not be used.";
    if (err.name === "NotAllowedError" || err.name === "SecurityError")
      return "Parley may not use the microphone: allow it in the browser's site settings to call.";
    if (err.name === "NotFoundError" || err.name === "OverconstrainedError") return "No microphone was found.";
    if (err.name === "NotReadableError") return "The microphone is in use by another program.";
    return "The microphone could not be used.";
  }
  function getMicrophone() {
    return navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  }
  function loadIceServers() {
    if (iceServers) return Promise.resolve(iceServers);
    return fetch("/calls/ice", { credentials: "same-origin" })
      .then(function (r) {
        return r.ok ? r.json() : { iceServers: [] };
      })
      .then(function (j) {
        iceServers = j.iceServers || [];
        return iceServers;
      })
      .catch(function () {
        return [];
      });
  }

  // --- Starting a call (the caller). Each step checks the call is still the one it began with:
  // the person may hang up (or the call end) while the browser asks for the microphone or the
  // server answers.
  function start(button) {
    if (call) return;
    if (!supported) {
      show("This browser cannot make calls.", ["close"]);
      return;
    }
    var peer = button.dataset.peer;
    var conv = button.dataset.calls.replace(/\/calls$/, "");
    var mine = { conv: conv, peer: peer, role: "caller", ice: [], state: "asking" };
    call = mine;
    show("Asking for the microphone…", ["hangup"]);
    getMicrophone().then(
      function (stream) {
        mine.stream = stream;
        if (call !== mine) return stop(mine);
        mine.state = "calling";
        show("Calling " + peer + "…", ["hangup"]);
        post(conv + "/calls", { video: false })
          .then(function (resp) {
            if (resp.status === 201) return resp.json();
            return errorOf(resp, "The call could not be started.").then(function (why) {
              throw new Error(why);
            });
          })
          .then(function (j) {
            mine.id = j.call;
            if (call !== mine) {
              // Hung up before the server answered: end it there too.
              post(conv + "/calls/" + j.call + "/hangup");
              return;
            }
            // The server ends an unanswered call; this is in case its word is lost.
            mine.ringTimer = setTimeout(function () {
              if (call === mine && mine.state === "calling") {
                post(url("hangup"));
                finish("No answer from " + peer + ".");
              }
            }, (j.ring_ms || RING_MS) + 5000);
          })
          .catch(function (err) {
            if (call === mine) finish(err.message || "The call could not be started.");
          });
      },
      function (err) {
        if (call === mine) {
          call = null;
          conclude(microphoneError(err));
        }
      }
    );
  }

  // --- An incoming call.
  function ringing(s) {
    if (call || over[s.call]) return;
    call = { id: s.call, conv: s.conv, peer: s.from, role: "callee", ice: [], state: "ringing" };
    show(s.from + " is calling", ["accept", "decline"]);
    ring(true);
    call.ringTimer = setTimeout(function () {
      if (call && call.id === s.call && call.state === "ringing") finish("Missed call from " + s.from + ".");
    }, s.ring_ms || RING_MS);
  }

  function accept() {
    if (!call || call.state !== "ringing") return;
    var mine = call;
    ring(false);
    mine.state = "accepting";
    show("Connecting…", ["hangup"]);
    getMicrophone().then(
      function (stream) {
        mine.stream = stream;
        if (call !== mine) return stop(mine);
        post(url("accept")).then(function (resp) {
          if (call !== mine) return;
          if (resp.status !== 204) return errorOf(resp, "The call could not be answered.").then(finish);
          mine.state = "connecting";
          keepAlive(mine);
          // The caller's offer may have come before our own answer did.
          if (mine.offer) answerOffer(mine, mine.offer);
        });
      },
      function (err) {
        // Without a microphone the call cannot go on: say why here, and decline it there.
        if (call !== mine) return;
        post(url("decline"));
        finish(microphoneError(err));
      }
    );
  }

  function decline() {
    if (!call) return;
    post(url("decline"));
    finish("Call declined.");
  }

  function hangUp() {
    if (!call) return;
    if (call.id) post(url("hangup"));
    finish("Call ended.");
  }

  // --- The connection.
  function connect(mine) {
    return loadIceServers().then(function (servers) {
      if (call !== mine) throw new Error("the call is over");
      var pc = new RTCPeerConnection({ iceServers: servers });
      mine.pc = pc;
      mine.stream.getTracks().forEach(function (t) {
        pc.addTrack(t, mine.stream);
      });
      pc.onicecandidate = function (e) {
        if (e.candidate && call === mine) post(url("signal"), { type: "ice", candidate: e.candidate.toJSON() });
      };
      pc.ontrack = function (e) {
        var audio = $("call-audio");
        if (audio && audio.srcObject !== e.streams[0]) audio.srcObject = e.streams[0];
      };
      pc.onconnectionstatechange = function () {
        if (call !== mine) return;
        var state = pc.connectionState;
        if (state === "connected") {
          clearTimeout(mine.lostTimer);
          if (!mine.since) talking();
        } else if (state === "failed") {
          hangUp();
        } else if (state === "disconnected") {
          clearTimeout(mine.lostTimer);
          mine.lostTimer = setTimeout(function () {
            if (call === mine && pc.connectionState !== "connected") {
              post(url("hangup"));
              finish("The connection to " + mine.peer + " was lost.");
            }
          }, LOST_MS);
        }
      };
      return pc;
    });
  }

  function answerOffer(mine, offer) {
    if (mine.answering) return;
    mine.answering = true;
    connect(mine)
      .then(function (pc) {
        return pc
          .setRemoteDescription({ type: "offer", sdp: offer.sdp })
          .then(function () {
            addCandidates();
            return pc.createAnswer();
          })
          .then(function (answer) {
            return pc.setLocalDescription(answer);
          });
      })
      .then(function () {
        if (call === mine) post(url("signal"), { type: "answer", sdp: mine.pc.localDescription.sdp });
      })
      .catch(function () {
        if (call === mine) hangUp();
      });
  }

  // Candidates that arrive before the other side's description wait for it.
  function addCandidates() {
    if (!call || !call.pc || !call.pc.remoteDescription) return;
    var pc = call.pc;
    call.ice.splice(0).forEach(function (c) {
      pc.addIceCandidate(c).catch(function () {});
    });
  }

  function talking() {
    call.state = "talking";
    call.since = Date.now();
    show("In a call with " + call.peer, ["mute", "hangup"]);
    var timer = $("call-timer");
    timer.hidden = false;
    var tick = function () {
      if (!call || !call.since) return;
      var s = Math.floor((Date.now() - call.since) / 1000);
      var mm = String(Math.floor(s / 60)).padStart(2, "0");
      var ss = String(s % 60).padStart(2, "0");
      timer.textContent = mm + ":" + ss;
    };
    tick();
    call.clock = setInterval(tick, 1000);
  }

  // The server ends a call whose page stops saying it is there (a closed laptop); a call that
  // has not connected in time hangs up.
  function keepAlive(mine) {
    mine.alive = setInterval(function () {
      if (call !== mine) return;
      post(url("alive")).then(function (resp) {
        if (resp.status === 409 && call === mine) finish("Call ended.");
      });
    }, ALIVE_MS);
    mine.connectTimer = setTimeout(function () {
      if (call === mine && !mine.since) {
        post(url("hangup"));
        finish("The call could not connect to " + mine.peer + ".");
      }
    }, CONNECT_MS);
  }

  function stop(c) {
    if (!c) return;
    clearTimeout(c.ringTimer);
    clearTimeout(c.lostTimer);
    clearTimeout(c.connectTimer);
    clearInterval(c.clock);
    clearInterval(c.alive);
    if (c.pc) c.pc.close();
    if (c.stream)
      c.stream.getTracks().forEach(function (t) {
        t.stop();
      });
  }

  function finish(text) {
    ring(false);
    if (call) {
      if (call.id) over[call.id] = true;
      stop(call);
    }
    call = null;
    var audio = $("call-audio");
    if (audio) audio.srcObject = null;
    $("call-mute").setAttribute("aria-pressed", "false");
    $("call-mute").textContent = "Mute";
    conclude(text);
  }

  function mute() {
    if (!call || !call.stream) return;
    var button = $("call-mute");
    var muted = button.getAttribute("aria-pressed") !== "true";
    call.stream.getAudioTracks().forEach(function (t) {
      t.enabled = !muted;
    });
    button.setAttribute("aria-pressed", String(muted));
    button.textContent = muted ? "Unmute" : "Mute";
  }

  var ENDINGS = {
    missed: function (c) {
      return c.role === "caller" ? "No answer from " + c.peer + "." : "Missed call from " + c.peer + ".";
    },
    declined: function (c) {
      return c.role === "caller" ? c.peer + " declined the call." : "Call declined.";
    },
    busy: function (c) {
      return c.peer + " is in another call.";
    },
    completed: function () {
      return "Call ended.";
    },
  };

  // --- Signals from the held poll, in the order they were sent.
  function receive(signals) {
    signals.forEach(function (s, i) {
      if (s.type === "ring") {
        // A page opened mid-ring gets the ring with what followed it: ring only if nothing did.
        var later = signals.slice(i + 1).some(function (n) {
          return n.call === s.call && (n.type === "ended" || n.type === "accepted");
        });
        if (!later) ringing(s);
        return;
      }
      if (s.type === "ended") over[s.call] = true;
      if (!call || call.id !== s.call) {
        // Answered on another page: a ring of it that comes again is not for this one.
        if (s.type === "accepted") over[s.call] = true;
        return;
      }
      handle(s);
    });
  }

  function handle(s) {
    var mine = call;
    switch (s.type) {
      case "accepted":
        if (mine.role === "callee") {
          // Answered on another page of ours.
          if (mine.state === "ringing") {
            over[mine.id] = true;
            ring(false);
            stop(mine);
            call = null;
            conclude("Answered on another device.");
          }
          return;
        }
        // Once: a signal can come twice (through two servers).
        if (mine.state !== "calling") return;
        clearTimeout(mine.ringTimer);
        mine.state = "connecting";
        show("Connecting to " + mine.peer + "…", ["hangup"]);
        keepAlive(mine);
        connect(mine)
          .then(function (pc) {
            return pc.createOffer().then(function (offer) {
              return pc.setLocalDescription(offer);
            });
          })
          .then(function () {
            if (call === mine) post(url("signal"), { type: "offer", sdp: mine.pc.localDescription.sdp });
          })
          .catch(function () {
            if (call === mine) hangUp();
          });
        return;
      case "offer":
        // For the page that answered: before its answer is through, the offer waits for it.
        if (mine.role !== "callee") return;
        if (mine.state === "accepting") mine.offer = s;
        else if (mine.state === "connecting") answerOffer(mine, s);
        return;
      case "answer":
        if (mine.role !== "caller" || !mine.pc || mine.answered) return;
        mine.answered = true;
        mine.pc
          .setRemoteDescription({ type: "answer", sdp: s.sdp })
          .then(addCandidates)
          .catch(function () {
            if (call === mine) hangUp();
          });
        return;
      case "ice":
        mine.ice.push(s.candidate);
        addCandidates();
        return;
      case "ended":
        finish((ENDINGS[s.outcome] || ENDINGS.completed)(mine));
        return;
    }
  }

  // --- Wiring.
  document.addEventListener("click", function (e) {
    var t = e.target.closest("button");
    if (!t) return;
    if (t.id === "call-button") start(t);
    else if (t.id === "call-accept") accept();
    else if (t.id === "call-decline") decline();
    else if (t.id === "call-hangup") hangUp();
    else if (t.id === "call-mute") mute();
    else if (t.id === "call-close") hide();
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && call === null && $("call") && !$("call").hidden) hide();
  });
  // Leaving the page leaves the call (the browser asks first, since it is easy to do by
  // following a link): a beacon still arrives after the page has gone. A page that only rings
  // leaves the ring to the person's other pages, or to its timeout.
  window.addEventListener("beforeunload", function (e) {
    if (call && call.state !== "ringing") {
      e.preventDefault();
      e.returnValue = "";
    }
  });
  window.addEventListener("pagehide", function () {
    if (!call || !call.id || call.state === "ringing") return;
    var body = new URLSearchParams({ csrf_token: csrfToken() });
    var target = url("hangup");
    if (!(navigator.sendBeacon && navigator.sendBeacon(target, body))) {
      fetch(target, { method: "POST", body: body, credentials: "same-origin", keepalive: true });
    }
  });
  function showButton() {
    var button = $("call-button");
    if (!button) return;
    if (supported) button.hidden = false;
    else $("call-unavailable").hidden = false;
  }
  document.addEventListener("DOMContentLoaded", showButton);
  document.addEventListener("htmx:afterSettle", showButton);

  window.parleyCalls = {
    supported: supported,
    receive: receive,
    // For the page's own tests: the state of the call going on.
    current: function () {
      return call && { id: call.id, state: call.state, pc: call.pc || null };
    },
  };
})();
