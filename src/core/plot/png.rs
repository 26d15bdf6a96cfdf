//! A [`Scene`] rasterized into a PNG, without a graphics library: shapes are drawn at twice the
//! scene's size (a crisp picture on high-density screens) with a round brush, text with the
//! public-domain 8×8 glyphs of `font8x8` (ASCII and Latin-1; other characters show as `?`), and
//! the image is written as 8-bit RGB, deflated by `miniz_oxide`.

use super::{Anchor, Rgb, Scene, Shape};

/// Pixels per scene unit.
const SCALE: f64 = 2.0;

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![0xff; w * h * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x < 0 || y < 0 || x as usize >= self.w || y as usize >= self.h {
            return;
        }
        let i = (y as usize * self.w + x as usize) * 3;
        self.px[i..i + 3].copy_from_slice(&[c.0, c.1, c.2]);
    }

    /// Fills pixels whose centres lie in [x0, x1) × [y0, y1), in pixel units.
    fn fill(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: Rgb) {
        for y in (y0.round() as i64)..(y1.round() as i64) {
            for x in (x0.round() as i64)..(x1.round() as i64) {
                self.set(x, y, c);
            }
        }
    }

    /// A disc of radius `r` pixels.
    fn disc(&mut self, cx: f64, cy: f64, r: f64, c: Rgb) {
        let r2 = r * r;
        for y in ((cy - r).floor() as i64)..=((cy + r).ceil() as i64) {
            for x in ((cx - r).floor() as i64)..=((cx + r).ceil() as i64) {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                if dx * dx + dy * dy <= r2 {
                    self.set(x, y, c);
                }
            }
        }
    }

    /// A segment drawn with a round brush `width` pixels wide.
    fn segment(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), width: f64, c: Rgb) {
        let len = ((x2 - x1).powi(2) + (y2 - y1).powi(2)).sqrt();
        let steps = (len * 2.0).ceil().max(1.0) as usize;
        for k in 0..=steps {
            let t = k as f64 / steps as f64;
            self.disc(x1 + t * (x2 - x1), y1 + t * (y2 - y1), width / 2.0, c);
        }
    }

    fn text(&mut self, x: f64, y: f64, s: &str, anchor: Anchor, size: f64, c: Rgb) {
        // Glyph pixels per font pixel: 11 px text gets 8×8 glyphs doubled, larger text more.
        let k = ((size * SCALE / 8.0 * 0.75).round() as i64).max(1);
        let bold = size >= 13.0;
        let advance = 8 * k;
        let width = s.chars().count() as i64 * advance;
        let left = (x * SCALE).round() as i64
            - match anchor {
                Anchor::Start => 0,
                Anchor::Middle => width / 2,
                Anchor::End => width,
            };
        let top = (y * SCALE).round() as i64 - 7 * k;
        for (n, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            let gx = left + n as i64 * advance;
            for (row, bits) in g.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) == 0 {
                        continue;
                    }
                    for dy in 0..k {
                        for dx in 0..(k + i64::from(bold)) {
                            self.set(gx + col * k + dx, top + row as i64 * k + dy, c);
                        }
                    }
                }
            }
        }
    }
}

fn glyph(c: char) -> [u8; 8] {
    use font8x8::legacy::{BASIC_LEGACY, LATIN_LEGACY};
    let u = c as u32;
    match u {
        0x20..=0x7e => BASIC_LEGACY[u as usize],
        0xa0..=0xff => LATIN_LEGACY[(u - 0xa0) as usize],
        _ => BASIC_LEGACY[b'?' as usize],
    }
}

/// The scene's pixels: width, height and RGB bytes, row by row.
pub fn rasterize(scene: &Scene) -> (usize, usize, Vec<u8>) {
    let (w, h) = (
        (scene.width * SCALE).ceil() as usize,
        (scene.height * SCALE).ceil() as usize,
    );
    let mut cv = Canvas::new(w, h);
    let p = |x: f64, y: f64| (x * SCALE, y * SCALE);
    for shape in &scene.shapes {
        match shape {
            Shape::Group(_) | Shape::EndGroup => {}
            Shape::Rect {
                x,
                y,
                w,
                h,
                fill,
                stroke,
            } => {
                let (x0, y0) = p(*x, *y);
                let (x1, y1) = p(x + w, y + h);
                if let Some(c) = fill {
                    cv.fill(x0, y0, x1, y1, *c);
                }
                if let Some(c) = stroke {
                    for (a, b) in [
                        ((x0, y0), (x1, y0)),
                        ((x1, y0), (x1, y1)),
                        ((x1, y1), (x0, y1)),
                        ((x0, y1), (x0, y0)),
                    ] {
                        cv.segment(a, b, SCALE, *c);
                    }
                }
            }
            Shape::Line {
                x1,
                y1,
                x2,
                y2,
                color,
            } => cv.segment(p(*x1, *y1), p(*x2, *y2), SCALE, *color),
            Shape::Polyline { points, color } => {
                for pair in points.windows(2) {
                    cv.segment(
                        p(pair[0].0, pair[0].1),
                        p(pair[1].0, pair[1].1),
                        1.5 * SCALE,
                        *color,
                    );
                }
            }
            Shape::Dot { x, y, color } => {
                let (cx, cy) = p(*x, *y);
                cv.disc(cx, cy, 3.0 * SCALE, *color);
            }
            Shape::Text {
                x,
                y,
                text,
                anchor,
                size,
                color,
            } => cv.text(*x, *y, text, *anchor, *size, *color),
        }
    }
    (w, h, cv.px)
}

/// The scene as PNG bytes.
pub fn to_png(scene: &Scene) -> Vec<u8> {
    let (w, h, px) = rasterize(scene);
    encode(w, h, &px)
}

/// An 8-bit RGB PNG (no interlacing, filter "none" on every row).
pub fn encode(w: usize, h: usize, rgb: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(h * (w * 3 + 1));
    for row in rgb.chunks_exact(w * 3) {
        raw.push(0); // filter type: none
        raw.extend_from_slice(row);
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(w as u32).to_be_bytes());
    ihdr.extend_from_slice(&(h as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // depth 8, RGB, deflate, filter 0, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &miniz_oxide::deflate::compress_to_vec_zlib(&raw, 6),
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes what [`encode`] writes: checks every chunk's CRC and inflates the pixels.
    fn decode(png: &[u8]) -> (usize, usize, Vec<u8>) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let mut at = 8;
        let (mut w, mut h, mut idat) = (0, 0, Vec::new());
        let mut kinds = Vec::new();
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind = &png[at + 4..at + 8];
            let data = &png[at + 8..at + 8 + len];
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(kind);
            hasher.update(data);
            assert_eq!(hasher.finalize(), crc);
            match kind {
                b"IHDR" => {
                    w = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                    h = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                    assert_eq!(&data[8..], [8, 2, 0, 0, 0]);
                }
                b"IDAT" => idat.extend_from_slice(data),
                _ => {}
            }
            kinds.push(String::from_utf8_lossy(kind).into_owned());
            at += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        let raw = miniz_oxide::inflate::decompress_to_vec_zlib(&idat).unwrap();
        assert_eq!(raw.len(), h * (w * 3 + 1));
        let px = raw
            .chunks_exact(w * 3 + 1)
            .flat_map(|row| {
                assert_eq!(row[0], 0);
                row[1..].to_vec()
            })
            .collect();
        (w, h, px)
    }

    #[test]
    fn png_round_trips_pixels() {
        let px: Vec<u8> = (0..5 * 3 * 3).map(|i| (i * 7) as u8).collect();
        assert_eq!(decode(&encode(5, 3, &px)), (5, 3, px));
    }

    #[test]
    fn shapes_land_where_the_scene_puts_them() {
        let red = Rgb(255, 0, 0);
        let scene = Scene {
            width: 50.0,
            height: 20.0,
            shapes: vec![
                Shape::Rect {
                    x: 0.0,
                    y: 0.0,
                    w: 50.0,
                    h: 20.0,
                    fill: Some(Rgb(255, 255, 255)),
                    stroke: None,
                },
                Shape::Polyline {
                    points: vec![(5.0, 10.0), (45.0, 10.0)],
                    color: red,
                },
                Shape::Text {
                    x: 0.0,
                    y: 8.0,
                    text: "I".into(),
                    anchor: Anchor::Start,
                    size: 11.0,
                    color: Rgb(0, 0, 1),
                },
            ],
        };
        let (w, h, px) = decode(&to_png(&scene));
        assert_eq!((w, h), (100, 40));
        let at = |x: usize, y: usize| {
            Rgb(
                px[(y * w + x) * 3],
                px[(y * w + x) * 3 + 1],
                px[(y * w + x) * 3 + 2],
            )
        };
        assert_eq!(at(50, 20), red);
        assert_eq!(at(50, 30), Rgb(255, 255, 255));
        assert_eq!(at(2, 20), Rgb(255, 255, 255));
        let ink = px.chunks_exact(3).filter(|p| p == &[0, 0, 1]).count();
        // "I" in font8x8 has 6 rows of 2 to 4 pixels, each drawn as a 2×2 block.
        assert!(ink > 20 && ink < 100, "{ink}");
    }
}
