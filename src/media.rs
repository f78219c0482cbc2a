//! What an uploaded file is, decided from its bytes, and the thumbnails of pictures.
//!
//! The client's word for a file's type is never believed: a file is shown inline (a picture,
//! audio, video) only when its first bytes say it is one, and anything else is served as a
//! download. A picture's thumbnail is made once, at upload, from the decoded pixels, so it carries
//! none of the original's metadata (EXIF, GPS position), with the EXIF orientation applied.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

/// How many of a file's first bytes decide its type.
pub const SNIFF_BYTES: usize = 8 * 1024;

/// The largest picture (in pixels) decoded for a thumbnail; a bigger one (a "picture bomb" of
/// huge dimensions and few bytes) gets none.
pub const MAX_PIXELS: u64 = 40_000_000;

/// A thumbnail's largest width, and height (a tall picture is not shown taller than this).
pub const PREVIEW_WIDTH: u32 = 400;
pub const PREVIEW_HEIGHT: u32 = 800;

/// How a file is shown in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inline {
    Picture,
    Audio,
    Video,
    /// A download link with its name, size and type.
    No,
}

impl Inline {
    /// How a stored content type is shown: only types the server decided from the bytes are
    /// ever one of the inline ones (see [`sniff`]).
    pub fn of(content_type: &str) -> Inline {
        match content_type {
            "image/png" | "image/jpeg" | "image/gif" | "image/webp" => Inline::Picture,
            t if t.starts_with("audio/") => Inline::Audio,
            t if t.starts_with("video/") => Inline::Video,
            _ => Inline::No,
        }
    }
}

/// The content type of a file whose first bytes are `head` and whose name is `name`.
///
/// A type with a magic number is taken from the bytes. Otherwise (text, HTML, SVG, …) the name's
/// extension says, except that a name claiming a type shown inline (`x.png` that is not a PNG)
/// is not believed: that file is `application/octet-stream`.
pub fn sniff(head: &[u8], name: &str) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    let guessed = mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream");
    match Inline::of(guessed) {
        Inline::No => guessed.to_owned(),
        _ => "application/octet-stream".to_owned(),
    }
}

/// A picture's thumbnail: its bytes, content type and size.
#[derive(Debug)]
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// The thumbnail of the picture `bytes`: at most [`PREVIEW_WIDTH`] wide, turned as its EXIF
/// orientation says, re-encoded from the pixels (so without the original's metadata): JPEG, or
/// PNG for a picture with transparency. None for anything that cannot be decoded within the
/// limits. Takes tens of milliseconds: call it off the async threads.
pub fn thumbnail(bytes: &[u8]) -> Option<Thumbnail> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(20_000);
    limits.max_image_height = Some(20_000);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().ok()?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return None;
    }
    let orientation = decoder.orientation().ok()?;
    let mut picture = DynamicImage::from_decoder(decoder).ok()?;
    picture.apply_orientation(orientation);
    if picture.width() > PREVIEW_WIDTH || picture.height() > PREVIEW_HEIGHT {
        picture = picture.thumbnail(PREVIEW_WIDTH, PREVIEW_HEIGHT);
    }
    let mut out = Cursor::new(Vec::new());
    let content_type = if picture.color().has_alpha() {
        picture.write_to(&mut out, image::ImageFormat::Png).ok()?;
        "image/png"
    } else {
        let rgb = DynamicImage::ImageRgb8(picture.to_rgb8());
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82);
        rgb.write_with_encoder(encoder).ok()?;
        "image/jpeg"
    };
    Some(Thumbnail {
        bytes: out.into_inner(),
        content_type,
        width: picture.width(),
        height: picture.height(),
    })
}

/// Why a picture cannot be a person's avatar: the sentence the profile page shows.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAnAvatar(pub &'static str);

/// A person's avatar from the picture `bytes` (PNG, JPEG, GIF or WebP, by its bytes alone):
/// turned as its EXIF orientation says, cropped to its centred square, scaled to `size`×`size`
/// and re-encoded as PNG from the pixels, so it carries none of the original's metadata. Takes
/// tens of milliseconds: call it off the async threads.
pub fn avatar(bytes: &[u8], size: u32) -> Result<Vec<u8>, NotAnAvatar> {
    const NOT_A_PICTURE: NotAnAvatar =
        NotAnAvatar("That is not a picture Parley can show: choose a PNG, JPEG, GIF or WebP.");
    let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
    if Inline::of(&sniff(head, "")) != Inline::Picture {
        return Err(NOT_A_PICTURE);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| NOT_A_PICTURE)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(20_000);
    limits.max_image_height = Some(20_000);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|_| NOT_A_PICTURE)?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(NotAnAvatar(
            "That picture is too large: at most 40 megapixels.",
        ));
    }
    let orientation = decoder.orientation().map_err(|_| NOT_A_PICTURE)?;
    let mut picture = DynamicImage::from_decoder(decoder).map_err(|_| NOT_A_PICTURE)?;
    picture.apply_orientation(orientation);
    let side = picture.width().min(picture.height());
    if side == 0 {
        return Err(NOT_A_PICTURE);
    }
    let square = picture.crop_imm(
        (picture.width() - side) / 2,
        (picture.height() - side) / 2,
        side,
        side,
    );
    let small = square.resize_exact(size, size, image::imageops::FilterType::Lanczos3);
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgba8(small.to_rgba8())
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|_| NOT_A_PICTURE)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(picture)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn a_type_shown_inline_is_believed_from_the_bytes_only() {
        assert_eq!(sniff(&png(2, 2), "holiday.txt"), "image/png");
        assert_eq!(
            sniff(b"not a picture at all", "fake.png"),
            "application/octet-stream"
        );
        assert_eq!(sniff(b"not a film", "fake.mp4"), "application/octet-stream");
        assert_eq!(sniff(b"hello", "notes.txt"), "text/plain");
        assert_eq!(
            sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "x.svg"),
            "image/svg+xml"
        );
        assert_eq!(sniff(b"<script>", "page.html"), "text/html");
        assert_eq!(
            sniff(b"\x00\x01", "no-extension"),
            "application/octet-stream"
        );
        assert_eq!(Inline::of("image/svg+xml"), Inline::No);
        assert_eq!(Inline::of("image/webp"), Inline::Picture);
    }

    #[test]
    fn a_thumbnail_is_at_most_400_pixels_wide_and_keeps_the_shape() {
        let thumb = thumbnail(&png(1000, 500)).expect("a thumbnail");
        assert_eq!((thumb.width, thumb.height), (400, 200));
        assert_eq!(thumb.content_type, "image/jpeg");
        let small = thumbnail(&png(40, 30)).expect("a thumbnail");
        assert_eq!((small.width, small.height), (40, 30), "never enlarged");
    }

    /// A 1×1 PNG whose header claims `width`×`height` (a "picture bomb" in miniature).
    fn claims_size(width: u32, height: u32) -> Vec<u8> {
        fn crc32(bytes: &[u8]) -> u32 {
            let mut crc = !0u32;
            for &b in bytes {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 == 1 {
                        (crc >> 1) ^ 0xedb8_8320
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        }
        let mut bytes = png(1, 1);
        // The IHDR chunk: length (8..12), "IHDR" (12..16), width, height, …, its CRC at 29..33.
        bytes[16..20].copy_from_slice(&width.to_be_bytes());
        bytes[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    #[test]
    fn an_avatar_is_the_centred_square_at_the_size_asked() {
        let png_bytes = avatar(&png(300, 100), 96).expect("an avatar");
        let back = image::load_from_memory(&png_bytes).unwrap();
        assert_eq!((back.width(), back.height()), (96, 96));
        // The centre of a 300×100 picture is x 100..200: red grows with x, so the left edge of
        // the avatar is about 100, not 0.
        let left = back.to_rgb8().get_pixel(0, 48)[0];
        assert!(
            (95..=110).contains(&left),
            "cropped from the centre: {left}"
        );
        assert!(avatar(b"just text, called x.png", 96).is_err());
        assert_eq!(
            avatar(&claims_size(10_000, 5_000), 96),
            Err(NotAnAvatar(
                "That picture is too large: at most 40 megapixels."
            )),
            "refused from its header, before any pixel is decoded"
        );
        assert!(avatar(b"\x89PNG\r\n\x1a\n broken", 96).is_err());
    }

    #[test]
    fn what_is_not_a_picture_gets_no_thumbnail() {
        assert!(thumbnail(b"GIF89a but then nothing").is_none());
        assert!(thumbnail(b"").is_none());
    }
}
