//! The verification code against an independent implementation (Python's `hmac`),
//! and the table of test vectors in the module docs.

use syncfabric_wifi::code::{code_at, code_for_window, matches, seconds_left};

fn fingerprint() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

/// Python's hmac/hashlib computing the same construction.
fn python(fp: &[u8; 32], window: u64) -> String {
    let script = format!(
        "import hmac,hashlib,struct\n\
         m=hmac.new(bytes.fromhex('{}'),struct.pack('>Q',{window}),hashlib.sha256).digest()\n\
         o=m[31]&15\n\
         print('%06d'%((int.from_bytes(m[o:o+4],'big')&0x7fffffff)%1000000))",
        hex::encode(fp)
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
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_documented_vectors_hold_and_python_agrees() {
    let fp = fingerprint();
    for (unix, window, want) in [
        (0u64, 0u64, "464393"),
        (59, 1, "309558"),
        (1_800_000_000, 60_000_000, "368530"),
        (4_102_444_800, 136_748_160, "160158"),
    ] {
        assert_eq!(unix / 30, window);
        let got = code_at(&fp, unix).unwrap();
        assert_eq!(got, python(&fp, window), "window {window}");
        assert_eq!(got, want, "the docs' table, window {window}");
    }
    for window in [2u64, 3, 1000, 12_345_678, u64::MAX / 2] {
        assert_eq!(code_for_window(&fp, window).unwrap(), python(&fp, window));
    }
}

#[test]
fn one_window_of_skew_each_way_and_no_more() {
    let fp = fingerprint();
    let t = 1_800_000_015;
    let now = code_at(&fp, t).unwrap();
    assert!(matches(&fp, &now, t).unwrap());
    assert!(matches(&fp, &format!("{} {}", &now[..3], &now[3..]), t).unwrap());
    assert!(matches(&fp, &code_at(&fp, t - 30).unwrap(), t).unwrap());
    assert!(matches(&fp, &code_at(&fp, t + 30).unwrap(), t).unwrap());
    // Two windows away: refused, unless it happens to equal one of the three.
    let far = code_at(&fp, t - 60).unwrap();
    let near: Vec<String> = [t - 30, t, t + 30]
        .iter()
        .map(|&u| code_at(&fp, u).unwrap())
        .collect();
    assert_eq!(matches(&fp, &far, t).unwrap(), near.contains(&far));
    for bad in ["", "12345", "1234567", "12a456"] {
        assert!(matches(&fp, bad, t).is_err(), "{bad:?}");
    }
    assert_eq!(seconds_left(1_800_000_015), 15);
    assert_eq!(seconds_left(1_800_000_000), 30);
}

/// A man in the middle shows the device another certificate: the codes differ.
#[test]
fn another_certificate_gives_another_code() {
    let fp = fingerprint();
    let mut other = fp;
    other[0] ^= 1;
    let t = 1_800_000_000;
    assert_ne!(code_at(&fp, t).unwrap(), code_at(&other, t).unwrap());
    assert!(!matches(&other, &code_at(&fp, t).unwrap(), t).unwrap());
}
