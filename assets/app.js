// Parley's own script: small enhancements on top of htmx. Every page works without it.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Every htmx request carries the CSRF token as a header.
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrfToken();
    // The poller says when its page's sidebar was last brought up to date.
    if (e.detail.elt.id === "poller" && e.detail.elt.dataset.t) {
      e.detail.parameters.t = e.detail.elt.dataset.t;
    }
    // And, on a browser that can take calls, which call signals it has seen (calls.js).
    if (e.detail.elt.id === "poller" && e.detail.elt.dataset.s !== undefined && window.parleyCalls && parleyCalls.supported) {
      e.detail.parameters.s = e.detail.elt.dataset.s;
    }
  });

  // Show times in the reader's own time zone.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      if (t.dataset.local) return;
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      t.textContent = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      t.title = d.toLocaleString();
      t.dataset.local = "1";
    });
  }

  function scroller() {
    return document.getElementById("scroller");
  }

  // The message list scrolls with column-reverse: 0 is the bottom (newest) in every browser
  // that supports it, and small negative values are "near the bottom".
  function nearBottom() {
    var s = scroller();
    return !s || Math.abs(s.scrollTop) < 80;
  }

  function toBottom() {
    var s = scroller();
    if (s) s.scrollTop = 0;
  }

  // This browser runs the script: the server then leaves the read position to it (below)
  // instead of marking a conversation read when its page loads.
  document.cookie = "parley_js=1; path=/; max-age=31536000; SameSite=Lax";
  // And its time zone (minutes east of UTC), so that pages divide days where the reader's begin.
  document.cookie = "parley_tz=" + -new Date().getTimezoneOffset() + "; path=/; max-age=31536000; SameSite=Lax";

  // --- Runs and days, as the server makes them on a page (views/timeline.rs): a message by the
  // same person within five minutes of the one before, on the same day, continues its group
  // (records of calls and topics stand alone, and the "New" divider starts a group); a divider
  // goes above each day's first message. Messages that arrive live, or are edited, deleted or
  // loaded later, are rendered once for everyone, so this puts them in place here, in the
  // reader's own time zone; and "Today" becomes "Yesterday" at midnight.
  var GROUP_WITHIN_MS = 5 * 60 * 1000;
  var DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function dayKey(d) {
    return d.getFullYear() * 10000 + (d.getMonth() + 1) * 100 + d.getDate();
  }
  function dayLabel(d) {
    var now = new Date();
    if (dayKey(d) === dayKey(now)) return "Today";
    var yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
    if (dayKey(d) === dayKey(yesterday)) return "Yesterday";
    var label = DAYS[d.getDay()] + " " + d.getDate() + " " + MONTHS[d.getMonth()];
    return d.getFullYear() === now.getFullYear() ? label : label + " " + d.getFullYear();
  }
  function isRecord(m) {
    return m.classList.contains("call-record") || m.classList.contains("topic-record");
  }
  function dividerAbove(m) {
    var before = m.previousElementSibling;
    if (before && before.id === "unread-divider") before = before.previousElementSibling;
    return before && before.classList.contains("day-divider") ? before : null;
  }
  // A message's time and author, as it shows them (its <time datetime> is to the second).
  function msOf(m) {
    var t = m.querySelector(":scope > header > time");
    return t ? Date.parse(t.getAttribute("datetime")) : NaN;
  }
  function authorOf(m) {
    var a = m.querySelector(":scope > header > .author");
    return a ? a.textContent : "";
  }
  function timed(m) {
    return m && m.matches("article.message") && !isNaN(msOf(m));
  }
  function arrange() {
    var prev = null;
    document.querySelectorAll("#scroller article.message").forEach(function (m) {
      if (!timed(m)) return;
      var d = new Date(msOf(m));
      var newDay = !prev || dayKey(new Date(msOf(prev))) !== dayKey(d);
      var divider = dividerAbove(m);
      if (newDay) {
        var label = dayLabel(d);
        if (!divider) {
          divider = document.createElement("div");
          divider.className = "day-divider";
          divider.setAttribute("role", "separator");
          divider.appendChild(document.createElement("span"));
          var unread = m.previousElementSibling;
          m.parentNode.insertBefore(divider, unread && unread.id === "unread-divider" ? unread : m);
        }
        if (divider.dataset.day !== String(dayKey(d)) || divider.textContent !== label) {
          divider.dataset.day = String(dayKey(d));
          divider.setAttribute("aria-label", label);
          divider.firstElementChild.textContent = label;
        }
      } else if (divider) {
        divider.remove();
      }
      var after = m.previousElementSibling;
      var grouped = !newDay && !isRecord(m) && !isRecord(prev) &&
        authorOf(m) === authorOf(prev) &&
        !(after && after.id === "unread-divider") &&
        msOf(m) - msOf(prev) >= 0 &&
        msOf(m) - msOf(prev) < GROUP_WITHIN_MS;
      m.classList.toggle("grouped", grouped);
      prev = m;
    });
    // A divider left with no message of its own below it (that message was deleted).
    document.querySelectorAll("#scroller .day-divider").forEach(function (divider) {
      var next = divider.nextElementSibling;
      if (next && next.id === "unread-divider") next = next.nextElementSibling;
      if (!timed(next) || dividerAbove(next) !== divider) divider.remove();
    });
  }
  setInterval(arrange, 60000);

  // --- Read position: tell the server what the reader has seen, while the page is visible:
  // the messages that have come into view, not those below it.
  var readTimer = null;
  function inView(m) {
    var s = scroller();
    if (!s) return true;
    return m.getBoundingClientRect().top < s.getBoundingClientRect().bottom - 8;
  }
  // The poller's cursor counts every change (edits and reactions too); the newest message is
  // the fallback before the first answer.
  function lastSeen() {
    var poller = document.querySelector("#messages #poller[data-after]");
    var all = Array.prototype.filter.call(document.querySelectorAll("#scroller [data-message-id]"), inView);
    var below = document.querySelectorAll("#scroller [data-message-id]").length > all.length;
    if (below) {
      return all.length ? Number(all[all.length - 1].dataset.messageId) : 0;
    }
    // Opened at an older message (a search result, a permalink): what has been seen ends where
    // the gap to the newest begins, until "Load newer messages" has filled it.
    var newer = document.getElementById("newer");
    if (newer) {
      var upto = 0;
      all.forEach(function (m) {
        if (m.compareDocumentPosition(newer) & Node.DOCUMENT_POSITION_FOLLOWING) {
          upto = Math.max(upto, Number(m.dataset.messageId));
        }
      });
      return upto;
    }
    var newest = all.length ? Number(all[all.length - 1].dataset.messageId) : 0;
    return Math.max(newest, poller ? Number(poller.dataset.after) : 0);
  }
  var readPending = null;
  function sendRead(beacon) {
    var composer = document.getElementById("composer");
    var seq = lastSeen();
    readPending = null;
    if (!composer || !seq) return;
    var url = composer.getAttribute("hx-post").replace(/\/messages$/, "/read");
    var body = new URLSearchParams({ seq: String(seq), csrf_token: csrfToken() });
    // Leaving the page: a beacon still arrives after it has gone.
    if (beacon && navigator.sendBeacon && navigator.sendBeacon(url, body)) return;
    fetch(url, { method: "POST", body: body, credentials: "same-origin" }).catch(function () {});
  }
  // At most one report in flight a second or so, however fast messages come: a timer that was
  // put off by every new message never fired while someone kept writing.
  function reportRead() {
    var composer = document.getElementById("composer");
    if (!composer || document.visibilityState !== "visible") return;
    readPending = true;
    if (readTimer) return;
    readTimer = setTimeout(function () {
      readTimer = null;
      sendRead(false);
    }, 800);
  }
  window.addEventListener("pagehide", function () {
    if (readPending) {
      clearTimeout(readTimer);
      readTimer = null;
      sendRead(true);
    }
  });
  document.addEventListener("visibilitychange", reportRead);

  // --- Live delivery. The poller replaces itself with new messages and a fresh poller (htmx
  // does that). After a 204 (nothing within the hold) or an error, fire it again, backing off on errors.
  var failures = 0;
  // A page opened at a message (`?around=`: a search result, a permalink) shows that message
  // where it is, marked, rather than the newest at the bottom; one opened with unread messages
  // shows the first of them under its "New" divider. Live messages still arrive below.
  var stick = !document.querySelector("#messages[data-focus]") && !document.getElementById("unread-divider");
  function showUnread() {
    var divider = document.getElementById("unread-divider");
    if (!divider) return false;
    var s = scroller();
    var top = divider.getBoundingClientRect().top - (s ? s.getBoundingClientRect().top : 0);
    // Only when the divider is off screen: a short conversation stays at its end. A couple of
    // read messages stay in view above it, for context.
    if (top < 0) {
      divider.scrollIntoView({ block: "start" });
      if (s) s.scrollTop -= 110;
    }
    stick = nearBottom();
    return true;
  }

  // --- New messages while the reader is scrolled up do not move the view: a button counts
  // them, and takes the reader to the newest (End and Ctrl+End do too).
  var arrived = 0;
  function showArrived() {
    var button = document.getElementById("jump-newest");
    if (!button) return;
    document.getElementById("jump-count").textContent = String(arrived);
    var composer = document.getElementById("composer");
    if (composer) button.style.bottom = composer.offsetHeight + 16 + "px";
    button.hidden = arrived === 0;
  }
  function jumpToNewest() {
    toBottom();
    arrived = 0;
    showArrived();
    stick = true;
    reportRead();
  }
  document.addEventListener("click", function (e) {
    if (!e.target.closest("#jump-newest")) return;
    jumpToNewest();
    var body = document.getElementById("composer-body");
    if (body) body.focus();
  });
  document.addEventListener("keydown", function (e) {
    if (e.key !== "End" || !scroller()) return;
    var t = e.target;
    if (t.closest && t.closest("input, textarea, select, [contenteditable]")) return;
    e.preventDefault();
    jumpToNewest();
  });
  document.addEventListener(
    "scroll",
    function (e) {
      if (e.target.id !== "scroller") return;
      // Whether the view follows the newest is the reader's choice as they scroll, not only as of
      // the last poll's answer: a page of older messages that loads while someone reads up must
      // not throw them to the bottom.
      stick = nearBottom();
      if (stick && arrived) {
        arrived = 0;
        showArrived();
      }
      reportRead();
    },
    true
  );
  function showFocused() {
    var messages = document.getElementById("messages");
    var el = messages && messages.dataset.focus && document.getElementById("m-" + messages.dataset.focus);
    if (!el) return false;
    el.scrollIntoView({ block: "center" });
    return true;
  }
  document.addEventListener("htmx:beforeSwap", function (e) {
    if (e.detail.elt.id === "poller") {
      stick = nearBottom();
      var empty = document.getElementById("no-messages");
      if (empty && e.detail.xhr.status === 200) empty.remove();
      if (e.detail.xhr.status === 200 && document.visibilityState !== "visible") {
        countUnseen(e.detail.serverResponse);
      }
      if (e.detail.xhr.status === 200 && !stick) {
        var doc = new DOMParser().parseFromString(e.detail.serverResponse, "text/html");
        arrived += doc.querySelectorAll("[data-message-id]:not([hx-swap-oob])").length;
        showArrived();
      }
    }
  });

  // --- Messages from others that arrive while the tab is hidden show in its title, as
  // "(3) #general · Parley", until the reader comes back.
  var unseen = 0;
  var plainTitle = document.title;
  function showUnseen() {
    document.title = unseen ? "(" + unseen + ") " + plainTitle : plainTitle;
  }
  // The open conversation's own messages: the sidebar does not count them (they are on this
  // page), so a private message or a mention here raises its notification from the message.
  function countUnseen(fragment) {
    var me = document.querySelector(".topbar .me");
    var myName = me ? me.textContent : "";
    var doc = new DOMParser().parseFromString(fragment, "text/html");
    var here = location.pathname;
    doc.querySelectorAll("[data-message-id]:not([hx-swap-oob])").forEach(function (m) {
      var author = m.querySelector(".author");
      var who = author ? author.textContent : "";
      if (who === myName) return;
      unseen++;
      var mentions = (m.dataset.mentions || "").split(" ");
      if (here.indexOf("/dm/") === 0) notify(here, "New message from " + who);
      else if (mentions.indexOf(myName.toLowerCase()) >= 0) notify(here, who + " mentioned you");
    });
    showUnseen();
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && unseen) {
      unseen = 0;
      showUnseen();
    }
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    var elt = e.detail.elt;
    if (elt.id === "poller") {
      var status = e.detail.xhr ? e.detail.xhr.status : 0;
      if (status === 200) {
        failures = 0;
        return;
      }
      if (status === 401) {
        window.location = "/login";
        return;
      }
      var delay = status === 204 ? 0 : Math.min(30000, 500 * Math.pow(2, failures++));
      setTimeout(function () {
        if (document.body.contains(elt)) htmx.trigger(elt, "poll");
      }, delay);
    } else if (elt.id === "composer") {
      var error = document.getElementById("composer-error");
      document.getElementById("composer-progress").hidden = true;
      if (e.detail.successful) {
        elt.reset();
        showFiles();
        // Back to one line: the height it grew to was for the text just sent.
        var body = elt.querySelector("textarea");
        body.style.height = "";
        body.style.overflowY = "";
        elt.querySelector('[name="client_key"]').value = newKey();
        error.textContent = "";
        elt.querySelector("textarea").focus();
        toBottom();
      } else {
        // Keep the text, say why; the same client_key makes a retry safe.
        var text = "";
        if (e.detail.xhr && e.detail.xhr.responseText) {
          var doc = new DOMParser().parseFromString(e.detail.xhr.responseText, "text/html");
          var p = doc.querySelector(".field-error, .error-note, main p");
          text = p ? p.textContent : "";
        }
        error.textContent = text || "Could not send: the server did not answer. Your message is kept; try again.";
      }
    }
  });
  document.addEventListener("htmx:afterSwap", function () {
    localTimes(document);
    arrange();
    watchSidebar();
  });
  document.addEventListener("htmx:oobAfterSwap", function () {
    localTimes(document);
    arrange();
    watchSidebar();
  });

  // --- Notifications. The sidebar arrives again whenever its counts change (through the page's
  // held poll); a private message or a mention that arrives while the tab is hidden raises a
  // desktop notification (once the person allowed them, from the header's button) and counts in
  // the title.
  var counts = null;
  function snapshot() {
    var now = {};
    document.querySelectorAll("#sidebar-lists a[data-unread]").forEach(function (a) {
      now[a.getAttribute("href")] = {
        unread: Number(a.dataset.unread) || 0,
        mentions: Number(a.dataset.mentions) || 0,
        name: (a.querySelector(".name") || a).textContent,
      };
    });
    return now;
  }
  function watchSidebar() {
    var now = snapshot();
    var before = counts;
    counts = now;
    if (!before || document.visibilityState === "visible") return;
    Object.keys(now).forEach(function (href) {
      var was = before[href] || { unread: 0, mentions: 0 };
      var direct = href.indexOf("/dm/") === 0;
      var more = now[href].mentions - was.mentions;
      if (direct) more = Math.max(more, now[href].unread - was.unread);
      if (more <= 0) return;
      unseen += more;
      showUnseen();
      notify(href, direct ? "New message from " + now[href].name : "You were mentioned in #" + now[href].name);
    });
  }
  function notify(href, text) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    var n = new Notification("Parley", { body: text, tag: href });
    n.onclick = function () {
      window.focus();
      window.location = href;
      n.close();
    };
  }
  function offerNotifications() {
    var button = document.getElementById("notify-toggle");
    if (!button || !("Notification" in window) || Notification.permission !== "default") return;
    button.hidden = false;
    button.addEventListener("click", function () {
      Notification.requestPermission().then(function () {
        button.hidden = true;
      });
    });
  }

  // --- A refused edit or reaction comes back as its form with the error (422), shown where
  // the form was; htmx swaps no 4xx answer by itself.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var elt = e.detail.elt;
    if (e.detail.xhr.status !== 422 || !elt.matches) return;
    if (elt.matches("form.editing")) {
      e.detail.shouldSwap = true;
    } else if (elt.matches("form.picker")) {
      e.detail.shouldSwap = true;
      e.detail.target = elt;
      e.detail.swapOverride = "outerHTML";
    }
  });

  // --- Any other refusal or failure (403, 404, 429, 500 …) comes as a short sentence
  // (`.error-note`), shown just after what was tried until the next request that works; htmx
  // swaps no error answer by itself. The poller and the composer say theirs their own way.
  function showRequestError(elt, text) {
    var old = document.getElementById("request-error");
    if (old) old.remove();
    var note = document.createElement("p");
    note.id = "request-error";
    note.className = "error-note";
    note.setAttribute("role", "alert");
    note.textContent = text;
    var at = elt.closest("form") || elt;
    if (at === document.body || !at.parentNode) {
      (document.getElementById("main") || document.body).prepend(note);
    } else {
      at.after(note);
    }
  }
  document.addEventListener("htmx:responseError", function (e) {
    var elt = e.detail.elt;
    var xhr = e.detail.xhr;
    if (!elt || !xhr || elt.id === "poller" || elt.id === "composer") return;
    if (xhr.getResponseHeader("HX-Redirect")) return;
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var note = doc.querySelector(".error-note");
    // A refused form that came back with its errors (422) was shown where it was.
    if (!note && xhr.status < 500) return;
    showRequestError(elt, note ? note.textContent : "Parley could not do that just now. Try again.");
  });
  document.addEventListener("htmx:sendError", function (e) {
    var elt = e.detail.elt;
    if (!elt || elt.id === "poller" || elt.id === "composer") return;
    showRequestError(elt, "Parley could not be reached. Check the connection and try again.");
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    // Only a request someone made takes the note away: not the poller, nor the sidebar's own
    // refresh every 15 s.
    var id = e.detail.elt.id;
    if (!e.detail.successful || id === "poller" || id === "sidebar-lists") return;
    var old = document.getElementById("request-error");
    if (old) old.remove();
  });

  // --- The sidebar brought by the feed does not replace search results someone is reading.
  document.addEventListener("htmx:oobBeforeSwap", function (e) {
    var q = document.getElementById("search-q");
    var target = e.detail.target;
    if (target && target.id === "sidebar-lists" && q && q.value.trim() !== "") e.preventDefault();
    // Nor does a live change to a message someone is editing take their text away: their save
    // brings the message as it then is.
    if (target && target.matches && target.matches("form.editing")) e.preventDefault();
  });

  // --- A message's first reaction: its reactions element is not on the page yet (messages
  // without reactions carry none), so it goes at the end of the message.
  document.addEventListener("htmx:oobErrorNoTarget", function (e) {
    var el = e.detail.content;
    if (!el || !el.id || el.id.indexOf("r-") !== 0) return;
    var message = document.getElementById("m-" + el.id.slice(2));
    if (!message || message.matches("form.editing")) return;
    el.removeAttribute("hx-swap-oob");
    var menu = message.querySelector(".message-menu");
    message.insertBefore(el, menu);
    htmx.process(el);
  });

  // --- Escape closes an open popover (the conversation's members and topic, the person
  // menu), back on its summary; a click elsewhere closes the person menu.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    var open = document.querySelector("details.members[open], details.person-menu[open]");
    if (!open) return;
    open.open = false;
    open.querySelector("summary").focus();
  });
  document.addEventListener("click", function (e) {
    var menu = document.querySelector("details.person-menu[open]");
    if (menu && !menu.contains(e.target)) menu.open = false;
  });

  // --- A message's actions menu: one at a time; Close (or opening it again) closes it.
  document.addEventListener("click", function (e) {
    var close = e.target.closest(".message-menu .close");
    if (close) close.closest(".message-menu").remove();
  });
  document.addEventListener("click", function (e) {
    var more = e.target.closest(".message .more");
    if (!more || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    var message = more.closest(".message");
    var open = message.querySelector(".message-menu");
    document.querySelectorAll(".message-menu").forEach(function (m) {
      m.remove();
    });
    if (!open) htmx.ajax("GET", more.getAttribute("href"), { target: message, swap: "beforeend" });
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    // A reaction chosen from the menu closes it.
    var form = e.detail.elt;
    if (form.classList && form.classList.contains("picker") && e.detail.successful) {
      var menu = form.closest(".message-menu");
      if (menu) menu.remove();
    }
  });
  document.addEventListener("htmx:afterSettle", function (e) {
    if (stick) toBottom();
  });
  // A poller replaces itself (outerHTML), so events on the old one do not reach the document;
  // the new one's htmx:load does. Each is the page having shown what came before it.
  document.addEventListener("htmx:load", function (e) {
    var elt = e.detail.elt;
    if (!elt || elt.id !== "poller") return;
    if (elt.dataset.signals && window.parleyCalls) {
      try {
        parleyCalls.receive(JSON.parse(elt.dataset.signals));
      } catch (err) {
        console.error(err);
      }
    }
    localTimes(document);
    arrange();
    if (stick) toBottom();
    if (document.getElementById("composer")) reportRead();
  });

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return String(Date.now()) + Math.random().toString(16).slice(2);
  }

  // --- Composer: Enter sends, Shift+Enter is a new line; it grows with its text. On a touch
  // screen (no Shift on its keyboard) Return is a new line and the Send button sends.
  var touch = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (t.id !== "composer-body" || touch) return;
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (t.value.trim() !== "" || chosenFiles()) t.form.requestSubmit();
    }
  });
  document.addEventListener("input", function (e) {
    var t = e.target;
    if (t.id !== "composer-body") return;
    t.style.height = "auto";
    t.style.height = Math.min(t.scrollHeight, 200) + "px";
    t.style.overflowY = t.scrollHeight > 200 ? "auto" : "hidden";
  });

  // --- Files: chosen with the paperclip, dropped anywhere on the page of a conversation, or
  // pasted (a picture from the clipboard). They wait in the composer's file input, listed under
  // it, and go with the next send to `attachments` as a multipart form, with a progress bar; a
  // refused upload keeps them and the text, and says why.
  function fileInput() {
    return document.getElementById("composer-file");
  }
  function chosenFiles() {
    var input = fileInput();
    return input && input.files ? input.files.length : 0;
  }
  function readableSize(n) {
    if (n < 1024) return n + " bytes";
    if (n < 1048576) return Math.round(n / 1024) + " KB";
    return (n / 1048576).toFixed(1) + " MB";
  }
  function showFiles() {
    var out = document.getElementById("composer-files");
    var input = fileInput();
    if (!out || !input) return;
    out.textContent = "";
    if (!input.files.length) return;
    var names = Array.prototype.map.call(input.files, function (f) {
      return f.name + " (" + readableSize(f.size) + ")";
    });
    out.appendChild(document.createTextNode("To send: " + names.join(", ") + " "));
    var clear = document.createElement("button");
    clear.type = "button";
    clear.className = "link";
    clear.textContent = "Remove";
    clear.addEventListener("click", function () {
      input.value = "";
      showFiles();
      document.getElementById("composer-body").focus();
    });
    out.appendChild(clear);
  }
  function addFiles(list) {
    var input = fileInput();
    if (!input || !list || !list.length) return false;
    var all = new DataTransfer();
    Array.prototype.forEach.call(input.files, function (f) { all.items.add(f); });
    Array.prototype.forEach.call(list, function (f) { all.items.add(f); });
    input.files = all.files;
    showFiles();
    return true;
  }
  document.addEventListener("change", function (e) {
    if (e.target.id === "composer-file") showFiles();
  });
  function carriesFiles(e) {
    return e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types, "Files") >= 0;
  }
  document.addEventListener("dragover", function (e) {
    if (!fileInput() || !carriesFiles(e)) return;
    e.preventDefault();
    document.body.classList.add("dropping");
  });
  document.addEventListener("dragleave", function (e) {
    if (!e.relatedTarget) document.body.classList.remove("dropping");
  });
  document.addEventListener("drop", function (e) {
    document.body.classList.remove("dropping");
    if (!fileInput() || !carriesFiles(e)) return;
    e.preventDefault();
    addFiles(e.dataTransfer.files);
    document.getElementById("composer-body").focus();
  });
  document.addEventListener("paste", function (e) {
    if (!fileInput() || !e.clipboardData || !e.clipboardData.files.length) return;
    // Into another field (the search box, an edit), a paste is that field's.
    var t = e.target;
    if (t.id !== "composer-body" && t.closest && t.closest("input, textarea, [contenteditable]")) return;
    if (addFiles(e.clipboardData.files)) e.preventDefault();
  });
  document.addEventListener("htmx:configRequest", function (e) {
    var form = e.detail.elt;
    if (form.id !== "composer") return;
    // The form's own encoding is for browsers without JavaScript. htmx chose the request's
    // Content-Type before this event and encodes the body after it, so both are set here.
    form.removeAttribute("enctype");
    if (chosenFiles()) {
      form.setAttribute("hx-encoding", "multipart/form-data");
      delete e.detail.headers["Content-Type"]; // the browser writes it, with the boundary
      e.detail.path = form.getAttribute("action");
      var bar = document.getElementById("composer-progress");
      bar.value = 0;
      bar.hidden = false;
    } else {
      form.removeAttribute("hx-encoding");
      e.detail.headers["Content-Type"] = "application/x-www-form-urlencoded";
    }
  });
  document.addEventListener("htmx:xhr:progress", function (e) {
    if (e.detail.elt.id !== "composer" || !e.detail.lengthComputable || !chosenFiles()) return;
    document.getElementById("composer-progress").value = (100 * e.detail.loaded) / e.detail.total;
  });

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    arrange();
    if (!showFocused() && !showUnread()) toBottom();
    counts = snapshot();
    offerNotifications();
    var body = document.getElementById("composer-body");
    if (body && window.matchMedia("(min-width: 48rem)").matches) body.focus();
    reportRead();
  });
})();
