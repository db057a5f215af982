//! Image loading: every format, pixel format and EXIF orientation gives the right RGB.
//! Fixtures come from `scripts/make_fixtures.py` (a 32x24 picture of four coloured
//! quadrants).

mod common;

use common::fixture;
use veridoc::{Engine, ErrorKind, ImageFormat, Input, LimitError, Pipeline};

const TL: [u8; 3] = [220, 30, 30];
const TR: [u8; 3] = [30, 200, 40];
const BL: [u8; 3] = [20, 40, 210];
const BR: [u8; 3] = [230, 220, 30];

fn luma(c: [u8; 3]) -> u8 {
    ((19595 * c[0] as u32 + 38470 * c[1] as u32 + 7471 * c[2] as u32 + 0x8000) >> 16) as u8
}

fn decode(name: &str) -> (Vec<u8>, Vec<usize>, Option<veridoc::DecodeInfo>) {
    let e = Engine::builder().cpu_threads(1).build().unwrap();
    let out = e
        .run(&Pipeline::new(), &[Input::path(fixture(name))])
        .unwrap();
    let item = out.items.into_iter().next().unwrap();
    let t = item.result.unwrap_or_else(|e| panic!("{name}: {e}"));
    (t.as_u8().unwrap().to_vec(), t.shape().to_vec(), item.decode)
}

fn at(px: &[u8], x: usize, y: usize) -> [u8; 3] {
    let i = (y * 32 + x) * 3;
    [px[i], px[i + 1], px[i + 2]]
}

fn close(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
    a.iter()
        .zip(b)
        .all(|(&x, y)| (x as i32 - y as i32).abs() <= tol)
}

fn check_quadrants(name: &str, expect: [[u8; 3]; 4], tol: i32) {
    let (px, shape, _) = decode(name);
    assert_eq!(shape, vec![24, 32, 3], "{name}: shape (after orientation)");
    let got = [
        at(&px, 8, 6),
        at(&px, 24, 6),
        at(&px, 8, 18),
        at(&px, 24, 18),
    ];
    for (g, w) in got.iter().zip(expect) {
        assert!(close(*g, w, tol), "{name}: got {got:?}, want {expect:?}");
    }
}

#[test]
fn every_format_decodes_to_rgb() {
    let all = [TL, TR, BL, BR];
    for (name, tol) in [
        ("rgb.png", 0),
        ("palette.png", 8),
        ("rgb.bmp", 0),
        ("rgb.tiff", 0),
        ("lossless.webp", 0),
        ("lossy.webp", 14),
        ("anim.gif", 8),
        ("q95.jpg", 10),
        ("progressive.jpg", 10),
        ("cmyk.jpg", 14),
    ] {
        check_quadrants(name, all, tol);
    }
}

#[test]
fn gray_inputs_replicate_luma() {
    let g = [TL, TR, BL, BR].map(|c| {
        let l = luma(c);
        [l, l, l]
    });
    check_quadrants("gray.png", g, 1);
    check_quadrants("gray16.png", g, 1);
    check_quadrants("gray.jpg", g, 6);
}

#[test]
fn alpha_flattens_onto_white() {
    check_quadrants("rgba.png", [TL, TR, BL, [255, 255, 255]], 0);
}

#[test]
fn exif_orientation_is_applied() {
    for n in 1..=8 {
        check_quadrants(&format!("orient{n}.jpg"), [TL, TR, BL, BR], 10);
        check_quadrants(&format!("orient{n}.png"), [TL, TR, BL, BR], 0);
        let (_, _, info) = decode(&format!("orient{n}.jpg"));
        assert_eq!(info.unwrap().orientation, n, "orientation tag read");
    }
}

#[test]
fn format_comes_from_content_not_extension() {
    let bytes = std::fs::read(fixture("rgb.png")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lie = dir.path().join("really_a_png.jpg");
    std::fs::write(&lie, &bytes).unwrap();
    let e = Engine::builder().cpu_threads(1).build().unwrap();
    let out = e.run(&Pipeline::new(), &[Input::path(&lie)]).unwrap();
    assert_eq!(out.items[0].decode.unwrap().format, ImageFormat::Png);
}

#[test]
fn decompression_bomb_is_refused_from_the_header() {
    // A PNG header claiming 100000 x 100000 pixels followed by almost no data.
    let mut png = Vec::new();
    png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&(ihdr.len() as u32).to_be_bytes());
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&ihdr);
    png.extend_from_slice(&chunk);
    png.extend_from_slice(&veridoc::testing::png_crc32(&chunk).to_be_bytes());
    // IDAT: a zlib stream holding one stored block of 100 zero bytes, then IEND.
    let zeros = [0u8; 100];
    let mut z = vec![0x78, 0x01, 0x01, 100, 0, !100u8, 0xFF];
    z.extend_from_slice(&zeros);
    z.extend_from_slice(&adler32(&zeros).to_be_bytes());
    for (name, data) in [(&b"IDAT"[..], z), (&b"IEND"[..], vec![])] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut c = name.to_vec();
        c.extend_from_slice(&data);
        png.extend_from_slice(&c);
        png.extend_from_slice(&veridoc::testing::png_crc32(&c).to_be_bytes());
    }
    let e = Engine::builder().cpu_threads(1).build().unwrap();
    let out = e
        .run(&Pipeline::new(), &[Input::bytes("bomb.png", png)])
        .unwrap();
    let err = out.items[0].result.as_ref().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Limit(LimitError::DimensionTooLarge { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("bomb.png"), "{err}");
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &d in data {
        a = (a + d as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}
