//! The pairing payload as a QR code: drawn in a terminal (Unicode half blocks, light
//! modules drawn so that it reads on a dark terminal, as `qrencode -t UTF8` draws it)
//! or written as a PNG (`serve --qr-png FILE`). The modules come from the `qrcode`
//! crate (no dependencies of its own); the PNG is written here (grayscale, stored
//! deflate blocks), so no image library enters the build. Its Debug output shows only
//! the size: the code carries a password.

use crate::{Error, Result};

/// Modules of light margin around the code (the standard's quiet zone).
pub const QUIET: usize = 4;

/// A QR code's modules.
pub struct Qr {
    width: usize,
    dark: Vec<bool>,
}

impl std::fmt::Debug for Qr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Qr({0}x{0} modules)", self.width)
    }
}

impl Qr {
    /// The QR code of `text` (error correction level M).
    pub fn encode(text: &str) -> Result<Qr> {
        let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M)
            .map_err(|e| Error::Invalid(format!("cannot make a QR code of it: {e}")))?;
        let width = code.width();
        let dark = code
            .to_colors()
            .into_iter()
            .map(|c| c == qrcode::Color::Dark)
            .collect();
        Ok(Qr { width, dark })
    }

    /// Modules per side, without the quiet zone.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether the module at (`x`, `y`) is dark; the quiet zone around (negative or
    /// past the width) is light.
    pub fn is_dark(&self, x: isize, y: isize) -> bool {
        let w = self.width as isize;
        (0..w).contains(&x) && (0..w).contains(&y) && self.dark[(y * w + x) as usize]
    }

    /// The code for a terminal: two module rows per line, light modules drawn.
    pub fn to_terminal(&self) -> String {
        let (q, w) = (QUIET as isize, self.width as isize);
        let mut out = String::new();
        let mut y = -q;
        while y < w + q {
            for x in -q..w + q {
                let top = !self.is_dark(x, y);
                let bottom = y + 1 < w + q && !self.is_dark(x, y + 1);
                out.push(match (top, bottom) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            out.push('\n');
            y += 2;
        }
        out
    }

    /// The code as a PNG: grayscale, `scale` pixels per module, with the quiet zone.
    pub fn to_png(&self, scale: usize) -> Vec<u8> {
        let scale = scale.max(1);
        let side = (self.width + 2 * QUIET) * scale;
        let mut raw = Vec::with_capacity(side * (side + 1));
        for py in 0..side {
            raw.push(0); // filter: none
            let y = (py / scale) as isize - QUIET as isize;
            for px in 0..side {
                let x = (px / scale) as isize - QUIET as isize;
                raw.push(if self.is_dark(x, y) { 0 } else { 255 });
            }
        }
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(&(side as u32).to_be_bytes());
        ihdr.extend_from_slice(&(side as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"IDAT", &zlib_stored(&raw));
        chunk(&mut png, b"IEND", &[]);
        png
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of stored (uncompressed) deflate blocks (RFC 1950, RFC 1951 3.2.4).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(65_535).collect()
    };
    for (i, b) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = b.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// CRC-32 (ISO-HDLC, as PNG uses it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

impl crate::pairing::Pairing {
    /// The payload as a QR code.
    pub fn qr(&self) -> Result<Qr> {
        Qr::encode(&self.to_payload())
    }
}
