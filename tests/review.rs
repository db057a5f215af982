//! The review page (`veridoc::verify::review`) of real verified photos, opened in headless
//! Chromium: its screenshot shows each annotated thumbnail pixel for pixel, and its DOM
//! after the filter script ran shows the filters hiding the right cards under the page's
//! own Content-Security-Policy. The screenshot is kept as `target/review-screenshot.png`
//! (and the page as `target/review-page.html`) for CI to keep.
//!
//! Needs Chromium (`scripts/setup.sh` installs it): without it the test skips loudly, or
//! fails where `VERIDOC_REQUIRE_ASSETS=1` (CI).

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use image::RgbImage;
use serde_json::Value;
use veridoc::verify::review::{self, ReviewPage};
use veridoc::verify::{Profile, Verdict, VerifyOptions};
use veridoc::{Input, Placement};

/// Chromium's whole run (start, render, screenshot, exit) may take this long; it takes
/// ~1 s on the 2-core dev machine.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(60);

/// The browser window: wide enough for a card's thumbnail and table side by side, tall
/// enough for the four cards of this test (~1,400 px of page).
const WINDOW: (u32, u32) = (1280, 2000);

/// Largest mean absolute difference (8-bit levels, over every channel of every pixel)
/// between a thumbnail as the page embeds it, decoded by the `image` crate, and the same
/// thumbnail in Chromium's screenshot. Measured: under 0.01 with Chromium 156 (the two
/// JPEG decoders agree); another photo in the same place differs by tens (asserted below).
const MAX_MEAN_DIFF: f64 = 2.0;

/// Executables tried on `PATH`, in order.
const BROWSERS: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = BROWSERS.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("VERIDOC_REQUIRE_ASSETS").as_deref() == Ok("1") {
            panic!("{test}: no Chromium on PATH and VERIDOC_REQUIRE_ASSETS=1 (run scripts/setup.sh, or install chromium)");
        }
        eprintln!("SKIPPED {test}: no Chromium on PATH (install chromium)");
    }
    found
}

/// Runs headless Chromium with `args` on `url`, stdout into `stdout`; kills its process
/// group after [`CHROMIUM_DEADLINE`]. Returns how long it ran.
fn chromium(bin: &Path, dir: &Path, args: &[String], url: &str, stdout: &Path) -> Duration {
    let err_path = stdout.with_extension("stderr");
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ])
    .arg(format!(
        "--user-data-dir={}",
        dir.join("chromium-profile").display()
    ))
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(File::create(stdout).expect("stdout file"))
    .stderr(File::create(&err_path).expect("stderr file"));
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let start = Instant::now();
    let mut child = cmd.spawn().expect("start chromium");
    let stderr = || std::fs::read_to_string(&err_path).unwrap_or_default();
    loop {
        match child.try_wait().expect("wait for chromium") {
            Some(status) => {
                assert!(status.success(), "chromium: {status}\n{}", stderr());
                return start.elapsed();
            }
            None if start.elapsed() < CHROMIUM_DEADLINE => {
                std::thread::sleep(Duration::from_millis(50))
            }
            None => {
                // the browser, its wrapper script and its renderers share the group
                #[cfg(unix)]
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium ran over {CHROMIUM_DEADLINE:?}\n{}", stderr());
            }
        }
    }
}

/// The DOM of `url` once its scripts ran, serialized by Chromium.
fn dump_dom(bin: &Path, dir: &Path, url: &str) -> String {
    let out = dir.join("dom.html");
    chromium(bin, dir, &["--dump-dom".to_string()], url, &out);
    std::fs::read_to_string(&out).expect("dom")
}

/// `file://` URL of an absolute path (bytes outside `[A-Za-z0-9/._-]` percent-encoded).
fn file_url(p: &Path) -> String {
    let mut url = String::from("file://");
    for b in p.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/._-".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// The embedded thumbnails, decoded, in card order.
fn thumbnails(html: &str) -> Vec<RgbImage> {
    html.split("data:image/jpeg;base64,")
        .skip(1)
        .map(|rest| {
            let b64 = &rest[..rest.find('"').expect("end of the data URI")];
            let jpeg = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64");
            image::load_from_memory(&jpeg).expect("jpeg").to_rgb8()
        })
        .collect()
}

/// Mean absolute difference between `t` and the screenshot's `t`-sized box at `(x, y)`.
fn mean_diff(shot: &RgbImage, t: &RgbImage, x: u32, y: u32) -> f64 {
    let mut sum = 0u64;
    for (tx, ty, p) in t.enumerate_pixels() {
        let q = shot.get_pixel(x + tx, y + ty);
        for c in 0..3 {
            sum += p[c].abs_diff(q[c]) as u64;
        }
    }
    sum as f64 / (t.width() * t.height() * 3) as f64
}

/// Where `t` is drawn in `shot` (top-left corner) and how closely: every position is
/// screened on an 8x8 grid of the thumbnail's pixels, the plausible ones compared whole.
fn locate(shot: &RgbImage, t: &RgbImage) -> Option<(u32, u32, f64)> {
    let (tw, th) = t.dimensions();
    if tw > shot.width() || th > shot.height() {
        return None;
    }
    let grid: Vec<(u32, u32)> = (0..8)
        .flat_map(|j| (0..8).map(move |i| ((2 * i + 1) * tw / 16, (2 * j + 1) * th / 16)))
        .collect();
    let near = |x: u32, y: u32, (gx, gy): (u32, u32)| -> u32 {
        let p = t.get_pixel(gx, gy);
        let q = shot.get_pixel(x + gx, y + gy);
        (0..3).map(|c| p[c].abs_diff(q[c]) as u32).sum()
    };
    let mut best: Option<(u32, u32, f64)> = None;
    for y in 0..=shot.height() - th {
        for x in 0..=shot.width() - tw {
            if near(x, y, grid[0]) > 60 {
                continue;
            }
            let screen: u32 = grid.iter().map(|&g| near(x, y, g)).sum();
            // a mean of 10 levels per channel on the grid: worth the whole comparison
            if screen > 64 * 30 {
                continue;
            }
            let d = mean_diff(shot, t, x, y);
            if best.is_none_or(|b| d < b.2) {
                best = Some((x, y, d));
            }
        }
    }
    best
}

/// Standard deviation of the thumbnail's green channel: a photo, not a flat box.
fn spread(t: &RgbImage) -> f64 {
    let n = (t.width() * t.height()) as f64;
    let mean = t.pixels().map(|p| p[1] as f64).sum::<f64>() / n;
    (t.pixels()
        .map(|p| (p[1] as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

/// The opening tags of the cards in a serialized DOM.
fn card_tags(dom: &str) -> Vec<&str> {
    dom.match_indices("<article")
        .map(|(i, _)| &dom[i..i + dom[i..].find('>').expect("tag end")])
        .collect()
}

#[test]
fn the_review_page_renders_in_chromium_with_thumbnails_and_filters() {
    let test = "the_review_page_renders_in_chromium_with_thumbnails_and_filters";
    let Some(corpus) = common::corpus_or_skip(test) else {
        return;
    };
    let Some(browser) = chromium_or_skip(test) else {
        return;
    };
    let assets = corpus.parent().expect("assets dir");
    let e = common::cpu_engine();
    assert_eq!(e.register_face_models(assets.join("models")).len(), 3);

    // one compliant photo and two defects (labels from construction), and an unreadable one
    let labels: Value =
        serde_json::from_slice(&std::fs::read(corpus.join("labels.json")).expect("labels"))
            .expect("labels json");
    let pick = |class: &str| {
        labels
            .as_array()
            .expect("entries")
            .iter()
            .find(|l| l["class"] == class)
            .and_then(|l| l["file"].as_str())
            .unwrap_or_else(|| panic!("no {class} entry"))
            .to_string()
    };
    let files = [pick("compliant"), pick("second_face"), pick("bg_pattern")];
    let mut inputs: Vec<Input> = files.iter().map(|f| Input::path(corpus.join(f))).collect();
    let broken = "broken <b>&amp;\"1\".jpg";
    inputs.push(Input::bytes(broken, vec![0xFF, 0xD8, 0xFF, 0x00]));
    let opts = VerifyOptions::new(Profile::passport()).placement(Placement::Cpu);
    let out = e.verify(&opts, &inputs).expect("verify");

    let dir = tempfile::tempdir().expect("tempdir");
    let html_path = dir.path().join("report.html");
    let file = std::io::BufWriter::new(File::create(&html_path).expect("page"));
    let mut page = ReviewPage::new(file, "veridoc review test").expect("head");
    for (r, name) in out.reports.iter().zip(files.iter().map(Some).chain([None])) {
        eprintln!("{}: {:?} failed {:?}", r.name, r.verdict, r.failed);
        let t = Instant::now();
        let photo = name.map(|f| {
            let bytes = std::fs::read(corpus.join(f)).expect("read photo");
            review::decode_for_review(&bytes).expect("decode photo")
        });
        page.add(r, photo.as_ref()).expect("card");
        eprintln!("  card in {:?} (decode, thumbnail, write)", t.elapsed());
    }
    page.finish().expect("finish");
    assert_eq!(out.reports[3].verdict, Verdict::Error);
    let html = std::fs::read_to_string(&html_path).expect("read page");
    let thumbs = thumbnails(&html);
    assert_eq!(thumbs.len(), 3, "a thumbnail per readable photo");

    // the screenshot
    let png = dir.path().join("screenshot.png");
    let url = file_url(&html_path);
    let took = chromium(
        &browser,
        dir.path(),
        &[
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--screenshot={}", png.display()),
        ],
        &url,
        &dir.path().join("screenshot.out"),
    );
    eprintln!("chromium screenshot: {took:?}");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir");
    std::fs::copy(&png, target.join("review-screenshot.png")).expect("keep the screenshot");
    std::fs::copy(&html_path, target.join("review-page.html")).expect("keep the page");
    let shot = image::open(&png).expect("screenshot png").to_rgb8();
    assert_eq!(shot.dimensions(), WINDOW);
    let mut corners = Vec::new();
    for (i, t) in thumbs.iter().enumerate() {
        assert!(spread(t) > 20.0, "thumbnail {i} is a photo, not a flat box");
        let found = locate(&shot, t);
        eprintln!("thumbnail {i} {}x{}: {found:?}", t.width(), t.height());
        let (x, y, d) = found.unwrap_or_else(|| panic!("thumbnail {i} not in the screenshot"));
        assert!(
            d <= MAX_MEAN_DIFF,
            "thumbnail {i}: mean difference {d:.2} at ({x}, {y})"
        );
        corners.push((x, y));
    }
    // one card under the other, in order
    assert!(corners.windows(2).all(|w| w[0].1 < w[1].1), "{corners:?}");
    // the comparison tells photos apart: each thumbnail against the others' places
    for (i, t) in thumbs.iter().enumerate() {
        for (j, &(x, y)) in corners.iter().enumerate() {
            if i != j && thumbs[j].dimensions() == t.dimensions() {
                let d = mean_diff(&shot, t, x, y);
                eprintln!("thumbnail {i} at {j}'s place: {d:.1}");
                assert!(
                    d > 5.0 * MAX_MEAN_DIFF,
                    "thumbnail {i} at {j}'s place: {d:.2}"
                );
            }
        }
    }

    // the filters, driven by the address's fragment: only the error card is left shown
    let dom = dump_dom(&browser, dir.path(), &format!("{url}#verdict=error"));
    assert!(
        dom.contains("<html lang=\"en\" class=\"js\">"),
        "the script ran under the page's CSP"
    );
    assert!(!dom.contains("<b>"), "the name's markup stays text");
    let cards = card_tags(&dom);
    assert_eq!(cards.len(), 4);
    for tag in &cards {
        let error = tag.contains("data-verdict=\"error\"");
        assert_eq!(tag.contains(" hidden"), !error, "{tag}");
    }
    assert!(dom.contains("1 of 4 shown"));

    // by failed check: the cards that failed it stay, the others go
    let Some(check) = out.reports.iter().flat_map(|r| r.failed.first()).next() else {
        panic!("no photo failed a check: {:?}", out.summary);
    };
    let dom = dump_dom(&browser, dir.path(), &format!("{url}#check={check}"));
    let cards = card_tags(&dom);
    let failing = out
        .reports
        .iter()
        .filter(|r| r.failed.contains(check))
        .count();
    assert_eq!(cards.len(), 4);
    for (tag, r) in cards.iter().zip(&out.reports) {
        assert_eq!(tag.contains(" hidden"), !r.failed.contains(check), "{tag}");
    }
    assert!(dom.contains(&format!("{failing} of 4 shown")));
}
