//! Batches: one result per input, in order; a bad input fails alone and says why.

mod common;

use common::fixture;
use veridoc::{DType, Engine, ErrorKind, Frame, Input, Layout, Pipeline, Shrink};

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    Frame::synthetic(w, h, 3).encode_jpeg(90).expect("jpeg")
}

#[test]
fn bad_items_fail_alone_in_order() {
    let good = jpeg(64, 48);
    let inputs = vec![
        Input::bytes("good1.jpg", good.clone()),
        Input::bytes("empty.jpg", Vec::<u8>::new()),
        Input::bytes("truncated.jpg", good[..good.len() / 2].to_vec()),
        Input::bytes("text.jpg", b"this is not an image".to_vec()),
        Input::path("/nonexistent/dir/missing.jpg"),
        Input::path(fixture("q95.jpg")),
        Input::frame("frame", Frame::synthetic(10, 10, 1)),
        Input::bytes(
            "garbage-after-soi.jpg",
            [&[0xFF, 0xD8, 0xFF][..], &[0x11; 64]].concat(),
        ),
    ];
    let e = Engine::builder().cpu_threads(2).build().unwrap();
    let p = Pipeline::new().fit(32, 32).imagenet().layout(Layout::Nchw);
    let out = e.run(&p, &inputs).unwrap();
    assert_eq!(out.items.len(), inputs.len());
    let ok: Vec<bool> = out.items.iter().map(|i| i.result.is_ok()).collect();
    assert_eq!(ok, [true, false, false, false, false, true, true, false]);
    assert_eq!(out.report.failed, 5);
    for (item, input) in out.items.iter().zip(&inputs) {
        assert_eq!(item.name, input.name(), "order kept");
        if let Err(e) = &item.result {
            assert_eq!(
                e.input(),
                Some(input.name().as_str()),
                "error names its input"
            );
        }
    }
    let kinds: Vec<String> = out
        .items
        .iter()
        .filter_map(|i| i.result.as_ref().err())
        .map(|e| format!("{:?}", std::mem::discriminant(e.kind())))
        .collect();
    assert_eq!(kinds.len(), 5);
    assert!(matches!(
        out.items[1].result.as_ref().unwrap_err().kind(),
        ErrorKind::InvalidInput(_)
    ));
    assert!(matches!(
        out.items[2].result.as_ref().unwrap_err().kind(),
        ErrorKind::Decode { .. }
    ));
    assert!(matches!(
        out.items[3].result.as_ref().unwrap_err().kind(),
        ErrorKind::Unsupported(_)
    ));
    assert!(matches!(
        out.items[4].result.as_ref().unwrap_err().kind(),
        ErrorKind::Io(_)
    ));
    assert!(matches!(
        out.items[7].result.as_ref().unwrap_err().kind(),
        ErrorKind::Decode { .. }
    ));
    let t = out.items[0].result.as_ref().unwrap();
    assert_eq!(t.shape(), &[3, 32, 32]);
    assert_eq!(t.dtype(), DType::F32);
}

#[test]
fn invalid_spec_is_refused_before_any_work() {
    let e = Engine::builder().cpu_threads(1).build().unwrap();
    let err = e
        .run(
            &Pipeline::new().fit(0, 10),
            &[Input::frame("f", Frame::synthetic(4, 4, 0))],
        )
        .unwrap_err();
    assert!(err.to_string().contains("resize.width"), "{err}");
}

#[test]
fn stacked_batch_is_nchw() {
    let e = Engine::builder().cpu_threads(2).build().unwrap();
    let inputs: Vec<Input> = (0..4)
        .map(|i| Input::frame(format!("f{i}"), Frame::synthetic(50 + i * 7, 40, i)))
        .collect();
    let p = Pipeline::new()
        .fit(16, 16)
        .imagenet()
        .layout(Layout::Nchw)
        .dtype(DType::F16);
    let out = e.run(&p, &inputs).unwrap();
    let b = out.stacked().unwrap();
    assert_eq!(b.shape(), &[4, 3, 16, 16]);
    assert_eq!(b.as_bytes().len(), 4 * 3 * 16 * 16 * 2);
}

#[test]
fn crop_outside_one_image_fails_only_that_image() {
    let e = Engine::builder().cpu_threads(2).build().unwrap();
    let inputs = vec![
        Input::frame("big", Frame::synthetic(100, 100, 0)),
        Input::frame("small", Frame::synthetic(20, 20, 0)),
    ];
    let out = e
        .run(&Pipeline::new().crop(10, 10, 50, 50), &inputs)
        .unwrap();
    assert!(out.items[0].result.is_ok());
    let err = out.items[1].result.as_ref().unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
}

#[test]
fn shrink_on_load_is_close_to_full_decode() {
    // 1024x768 -> 100x75: shrink-on-load decodes at 1/8 (128x96) then resamples.
    let bytes = jpeg(1024, 768);
    let e = Engine::builder().cpu_threads(2).build().unwrap();
    let p = Pipeline::new().fit(100, 100).dtype(DType::U8);
    let fast = e
        .run(
            &p.clone().shrink(Shrink::Fast),
            &[Input::bytes("a.jpg", bytes.clone())],
        )
        .unwrap();
    // the default is exact
    let exact = e.run(&p, &[Input::bytes("a.jpg", bytes)]).unwrap();
    assert_eq!(fast.items[0].decode.unwrap().shrink, 8);
    assert_eq!(exact.items[0].decode.unwrap().shrink, 1);
    let a = fast.items[0]
        .result
        .as_ref()
        .unwrap()
        .as_u8()
        .unwrap()
        .to_vec();
    let b = exact.items[0]
        .result
        .as_ref()
        .unwrap()
        .as_u8()
        .unwrap()
        .to_vec();
    let mean = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .sum::<f64>()
        / a.len() as f64;
    assert!(mean < 3.0, "mean abs difference {mean} levels");
}

/// Inputs that are not regular files, or are over the input-size limit, fail alone and
/// at once: nothing waits for a FIFO's writer or reads `/dev/zero` until memory runs out,
/// with and without the result cache (which reads files to hash them).
#[cfg(unix)]
#[test]
fn special_files_and_oversized_inputs_fail_alone_without_reading() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.jpg");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(matches!(made, Ok(s) if s.success()), "mkfifo: {made:?}");
    let big = dir.path().join("big.jpg");
    std::fs::write(&big, jpeg(640, 480)).unwrap();
    let small = dir.path().join("small.jpg");
    std::fs::write(&small, jpeg(64, 48)).unwrap();
    let limit = std::fs::metadata(&small).unwrap().len();
    assert!(std::fs::metadata(&big).unwrap().len() > limit);
    let inputs = vec![
        Input::path(&fifo),
        Input::path("/dev/zero"),
        Input::path(dir.path()),
        Input::path(&big),
        Input::bytes("big-bytes.jpg", jpeg(640, 480)),
        Input::path(&small),
    ];
    let p = Pipeline::new().fit(32, 32);
    for cached in [false, true] {
        let mut b = Engine::builder()
            .cpu_threads(2)
            .decode_limits(veridoc::DecodeLimits {
                max_input_bytes: limit,
                ..veridoc::DecodeLimits::default()
            });
        if cached {
            b = b.result_cache(veridoc::cache::CacheConfig::memory(64 << 20));
        }
        let e = b.build().unwrap();
        let out = e.run(&p, &inputs).unwrap();
        let kinds: Vec<String> = out
            .items
            .iter()
            .map(|i| match &i.result {
                Ok(_) => "ok".to_string(),
                Err(e) => match e.kind() {
                    ErrorKind::InvalidInput(m) => format!("invalid: {m}"),
                    ErrorKind::Limit(l) => format!("limit: {l}"),
                    other => format!("other: {other}"),
                },
            })
            .collect();
        assert!(
            kinds[0].starts_with("invalid") && kinds[0].contains("a FIFO"),
            "{kinds:?}"
        );
        assert!(kinds[1].contains("a character device"), "{kinds:?}");
        assert!(kinds[2].contains("a directory"), "{kinds:?}");
        assert!(kinds[3].starts_with("limit: input size"), "{kinds:?}");
        assert!(kinds[4].starts_with("limit: input size"), "{kinds:?}");
        assert_eq!(kinds[5], "ok", "cached {cached}");
    }
}
