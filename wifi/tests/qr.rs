//! The pairing QR code decoded back by an independent decoder (`rqrr`), from the
//! terminal drawing and from the PNG (read back by Python's zlib, not by our code).

use syncfabric_wifi::pairing::Pairing;
use syncfabric_wifi::password::AccessPassword;
use syncfabric_wifi::qr::QUIET;

fn pairing() -> Pairing {
    let pw = AccessPassword::generate().unwrap();
    let fp: [u8; 32] = std::array::from_fn(|i| (i * 7) as u8);
    Pairing::new(
        "https://laptop.local:8443/dav/6b0c1e9a-2f8a-4b1e-9c7d-0d5e3f2a1b4c/",
        fp,
        pw,
    )
    .unwrap()
}

/// Decodes a grayscale picture (true = light) with rqrr.
fn decode(w: usize, h: usize, light: impl Fn(usize, usize) -> bool) -> String {
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| if light(x, y) { 255 } else { 0 });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one code found");
    let (_, text) = grids[0].decode().unwrap();
    text
}

#[test]
fn the_terminal_drawing_decodes_to_the_payload_pair_accepts() {
    let p = pairing();
    let drawing = p.qr().unwrap().to_terminal();
    // Back to pixels: each character is one module wide and two tall; drawn = light.
    let rows: Vec<Vec<char>> = drawing.lines().map(|l| l.chars().collect()).collect();
    let (w, h) = (rows[0].len(), rows.len() * 2);
    let scale = 4;
    let light = |x: usize, y: usize| {
        let (mx, my) = (x / scale, y / scale);
        match rows[my / 2][mx] {
            '█' => true,
            '▀' => my % 2 == 0,
            '▄' => my % 2 == 1,
            _ => false,
        }
    };
    let text = decode(w * scale, h * scale, light);
    assert_eq!(text, p.to_payload().as_str());
    assert_eq!(Pairing::parse(&text).unwrap(), p);
}

#[test]
fn the_png_decodes_to_the_payload() {
    let p = pairing();
    let qr = p.qr().unwrap();
    let scale = 6;
    let png = qr.to_png(scale);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pair.png");
    std::fs::write(&file, &png).unwrap();
    // Python reads the PNG (signature, chunk CRCs, zlib) and prints the pixels as 0/1.
    let script = format!(
        "import zlib,struct\n\
         d=open(r'{}','rb').read()\n\
         assert d[:8]==b'\\x89PNG\\r\\n\\x1a\\n'\n\
         i=8;idat=b''\n\
         while i<len(d):\n\
         \x20n=struct.unpack('>I',d[i:i+4])[0];t=d[i+4:i+8];c=d[i+8:i+8+n]\n\
         \x20assert zlib.crc32(t+c)==struct.unpack('>I',d[i+8+n:i+12+n])[0]\n\
         \x20if t==b'IHDR':w,h=struct.unpack('>II',c[:8])\n\
         \x20if t==b'IDAT':idat+=c\n\
         \x20i+=12+n\n\
         r=zlib.decompress(idat)\n\
         print(w,h)\n\
         print(''.join('1' if r[y*(w+1)+1+x] else '0' for y in range(h) for x in range(w)))",
        file.display()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let dims: Vec<usize> = lines
        .next()
        .unwrap()
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    let (w, h) = (dims[0], dims[1]);
    assert_eq!(w, (qr.width() + 2 * QUIET) * scale);
    let bits: Vec<u8> = lines.next().unwrap().bytes().collect();
    let decoded = decode(w, h, |x, y| bits[y * w + x] == b'1');
    assert_eq!(decoded, p.to_payload().as_str());
    assert!(!format!("{qr:?}").contains("laptop"));
}
