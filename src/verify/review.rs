//! A self-contained HTML review page of verification results, written as the reports
//! arrive: one card per photo (an annotated thumbnail, the verdict, every failed check with
//! its value and range, the other checks folded away), then the totals and filters by
//! verdict and by failed check.
//!
//! ```no_run
//! use veridoc::verify::review::{self, ReviewPage};
//! use veridoc::verify::{Profile, VerifyOptions};
//! use veridoc::{Engine, Input};
//!
//! let engine = Engine::builder().build()?;
//! engine.register_face_models("fixtures/models");
//! let paths = ["a.jpg", "b.jpg"];
//! let inputs: Vec<Input> = paths.iter().map(Input::path).collect();
//! let out = engine.verify(&VerifyOptions::new(Profile::passport()), &inputs)?;
//! let file = std::io::BufWriter::new(std::fs::File::create("report.html")?);
//! let mut page = ReviewPage::new(file, "passport check")?;
//! for (path, report) in paths.iter().zip(&out.reports) {
//!     // a thumbnail is optional: a photo that cannot be re-read gets a card without one
//!     let photo = std::fs::read(path).ok().and_then(|b| review::decode_for_review(&b).ok());
//!     page.add(report, photo.as_ref())?;
//! }
//! page.finish()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Memory stays bounded however many photos there are: each card is written when it is
//! added (the thumbnail is encoded straight into the output), and the page keeps only its
//! counts. The page loads nothing (no script, style, font or image from anywhere): the
//! thumbnails are `data:` URIs, and a Content-Security-Policy in its head allows only the
//! page's own style and script, by hash. Without JavaScript every card is shown and the
//! filters are disabled. A page cut short (no [`ReviewPage::finish`]) still shows the cards
//! written so far.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD;
use base64::write::EncoderWriter;
use fast_image_resize as fir;

use super::annotate::annotate;
use super::report::{Check, CheckStatus, PhotoReport, Verdict};
use crate::error::{Error, Result};
use crate::frame::Frame;

/// Longest side of a card's thumbnail, px: two portraits side by side on a phone, and a
/// passport photo's landmarks still apart (inter-eye distance ~70 px at a 0.2 ratio).
pub const THUMBNAIL_SIDE: u32 = 360;

/// JPEG quality of the thumbnails: 80 keeps the drawn 1-px lines and landmark dots clean
/// at 21-27 KB per 280x360 portrait (the three corpus photos of `tests/review.rs`).
const THUMBNAIL_QUALITY: u8 = 80;

/// The page's style sheet. Its SHA-256 is [`STYLE_HASH`]: edit both together (the unit
/// test `csp_hashes_match_the_inline_style_and_script` says when they disagree).
const STYLE: &str = "\
:root{color-scheme:light;font:14px/1.4 system-ui,sans-serif;color:#1d1d22;background:#f3f3f5}
body{margin:0;padding:12px 16px;display:flex;flex-direction:column;gap:12px}
header{order:-2}header h1{margin:0;font-size:20px}header p{margin:2px 0 0;color:#555}
nav{order:-1;display:flex;flex-wrap:wrap;gap:8px 20px;align-items:center;padding:8px 12px;\
background:#fff;border:1px solid #d6d6dc;border-radius:6px}
nav p{margin:0;font-weight:600}
main{display:flex;flex-direction:column;gap:12px}
.card{display:flex;flex-wrap:wrap;gap:12px;padding:10px;background:#fff;border:1px solid #d6d6dc;\
border-left:6px solid #888;border-radius:6px}
.card[data-verdict=accepted]{border-left-color:#1f9d3a}
.card[data-verdict=rejected]{border-left-color:#d32f2f}
.card[data-verdict=error]{border-left-color:#7b1fa2}
.card img{display:block;flex:none;max-width:100%;height:auto;background:#ddd}
.info{flex:1 1 420px;min-width:0}
.info h2{margin:0 0 4px;font-size:15px;overflow-wrap:anywhere}
.meta{margin:0 0 6px;color:#444}
.badge{display:inline-block;padding:0 8px;border-radius:9px;color:#fff;font-weight:600;\
text-transform:uppercase;font-size:12px;background:#888}
.badge.accepted{background:#1f9d3a}.badge.rejected{background:#d32f2f}.badge.error{background:#7b1fa2}
p.error{color:#7b1fa2;font-weight:600;overflow-wrap:anywhere;white-space:pre-wrap}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:2px 6px;border-bottom:1px solid #ececf0;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.fail td{background:#fdecec}tr.skipped td{color:#777}
details{margin-top:6px}summary{cursor:pointer;color:#444}
ul.warn{margin:6px 0 0;padding-left:18px;color:#8a5a00}
[hidden]{display:none!important}
";

/// Base64 SHA-256 of [`STYLE`]'s text, for the page's Content-Security-Policy (the CSP's
/// hash-source form). The unit test computes it and prints the right value when this one is
/// stale.
const STYLE_HASH: &str = "sha256-9sPvdo7FUIXE88V4m4vJTFvAKXIfwdUiQrq7h3FhkEU=";

/// The filters: cards whose verdict and failed checks match both selects stay shown. The
/// selection is kept in the address's fragment (`#verdict=rejected&check=faces`), so a
/// filtered view can be linked. Its SHA-256 is [`SCRIPT_HASH`]: edit both together.
const SCRIPT: &str = "\
(function () {
  var v = document.getElementById('f-verdict');
  var c = document.getElementById('f-check');
  var n = document.getElementById('f-shown');
  var cards = document.querySelectorAll('article.card');
  function apply() {
    var shown = 0;
    for (var i = 0; i < cards.length; i++) {
      var k = cards[i];
      var failed = ' ' + (k.getAttribute('data-failed') || '') + ' ';
      var ok = (v.value === 'all' || k.getAttribute('data-verdict') === v.value) &&
        (c.value === '' || failed.indexOf(' ' + c.value + ' ') >= 0);
      k.hidden = !ok;
      if (ok) shown++;
    }
    n.textContent = shown + ' of ' + cards.length + ' shown';
  }
  function save() {
    var q = new URLSearchParams();
    if (v.value !== 'all') q.set('verdict', v.value);
    if (c.value !== '') q.set('check', c.value);
    try { history.replaceState(null, '', '#' + q.toString()); } catch (e) {}
    apply();
  }
  var q = new URLSearchParams(location.hash.slice(1));
  if (q.has('verdict')) v.value = q.get('verdict');
  if (v.selectedIndex < 0) v.value = 'all';
  if (q.has('check')) c.value = q.get('check');
  if (c.selectedIndex < 0) c.value = '';
  v.disabled = false;
  c.disabled = false;
  v.addEventListener('change', save);
  c.addEventListener('change', save);
  document.documentElement.classList.add('js');
  apply();
})();
";

/// Base64 SHA-256 of [`SCRIPT`] (computed and checked as [`STYLE_HASH`]).
const SCRIPT_HASH: &str = "sha256-Cdz/OgnF0uGujZxxD5xZvR5jr2fX6hHeheCsaLvsCGo=";

/// A streaming writer of the review page: [`ReviewPage::new`] writes the head, each
/// [`ReviewPage::add`] one card, [`ReviewPage::finish`] the totals and the filters.
///
/// Give it a buffered writer (`BufWriter<File>`): it writes in many small pieces.
pub struct ReviewPage<W: Write> {
    out: W,
    /// Cards written.
    cards: usize,
    accepted: usize,
    rejected: usize,
    errors: usize,
    /// Photos that failed each check, by check token.
    failures: BTreeMap<String, usize>,
    /// Reused for every thumbnail (it owns its scratch buffers).
    resizer: fir::Resizer,
}

impl<W: Write> std::fmt::Debug for ReviewPage<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewPage")
            .field("cards", &self.cards)
            .field("accepted", &self.accepted)
            .field("rejected", &self.rejected)
            .field("errors", &self.errors)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl<W: Write> ReviewPage<W> {
    /// Starts a page titled `title` (escaped): writes the head, the style and the header.
    ///
    /// # Errors
    /// Whatever writing to `out` returns.
    pub fn new(mut out: W, title: &str) -> io::Result<Self> {
        let title = escape(title);
        writeln!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             img-src data:; style-src '{STYLE_HASH}'; script-src '{SCRIPT_HASH}'; \
             base-uri 'none'; form-action 'none'\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"generator\" content=\"veridoc {version}\">\n\
             <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <header><h1>{title}</h1><p>veridoc {version} verification review: boxes show \
             the faces found (green: the one judged), dots its 68 landmarks, the yellow \
             line its eyes, cyan its head from crown to chin, blue the background regions \
             measured.</p></header>\n<main>",
            version = env!("CARGO_PKG_VERSION"),
        )?;
        Ok(ReviewPage {
            out,
            cards: 0,
            accepted: 0,
            rejected: 0,
            errors: 0,
            failures: BTreeMap::new(),
            resizer: fir::Resizer::new(),
        })
    }

    /// Writes the card of one photo. `photo` is the photo at any scale (the report's
    /// coordinates are scaled to it; [`decode_for_review`] decodes one small and fast): it
    /// becomes a thumbnail with the faces, landmarks and background regions drawn. `None`,
    /// or an error report, gives a card without an image; a thumbnail that cannot be made
    /// is said in the card, not returned as an error.
    ///
    /// # Errors
    /// Whatever writing to the output returns.
    pub fn add(&mut self, report: &PhotoReport, photo: Option<&Frame>) -> io::Result<()> {
        self.cards += 1;
        let verdict = verdict_name(report.verdict);
        match report.verdict {
            Verdict::Accepted => self.accepted += 1,
            Verdict::Rejected => self.rejected += 1,
            Verdict::Error => self.errors += 1,
        }
        let mut failed = Vec::with_capacity(report.failed.len());
        for name in &report.failed {
            let t = token(name);
            if !failed.contains(&t) {
                *self.failures.entry(t.clone()).or_default() += 1;
                failed.push(t);
            }
        }
        let thumb = match (photo, report.verdict) {
            (Some(p), Verdict::Accepted | Verdict::Rejected) => {
                Some(thumbnail(&mut self.resizer, p, report))
            }
            _ => None,
        };
        writeln!(
            self.out,
            "<article class=\"card\" id=\"p{}\" data-verdict=\"{verdict}\" data-failed=\"{}\">",
            self.cards,
            escape(&failed.join(" "))
        )?;
        let mut note = None;
        match thumb {
            Some(Ok((w, h, jpeg))) => {
                self.out.write_all(b"<img src=\"data:image/jpeg;base64,")?;
                {
                    let mut enc = EncoderWriter::new(&mut self.out, &STANDARD);
                    enc.write_all(&jpeg)?;
                    enc.finish()?;
                }
                writeln!(
                    self.out,
                    "\" width=\"{w}\" height=\"{h}\" alt=\"{} with what verification saw drawn on it\">",
                    escape(&report.name)
                )?;
            }
            Some(Err(e)) => note = Some(format!("no thumbnail: {e}")),
            None => {}
        }
        let mut s = String::with_capacity(2048);
        card_text(&mut s, report, verdict, note.as_deref());
        s.push_str("</article>\n");
        self.out.write_all(s.as_bytes())
    }

    /// Writes the totals, the filter controls (verdicts and failed checks with their
    /// counts) and the filter script, closes the page and flushes; returns the writer.
    ///
    /// # Errors
    /// Whatever writing to or flushing the output returns.
    pub fn finish(mut self) -> io::Result<W> {
        let mut s = String::with_capacity(1024 + 64 * self.failures.len());
        let _ = write!(
            s,
            "</main>\n<nav aria-label=\"filters\">\n<p>{} photos: {} accepted, {} rejected, \
             {} errors</p>\n<label>verdict <select id=\"f-verdict\" disabled>\
             <option value=\"all\">all ({})</option>",
            self.cards, self.accepted, self.rejected, self.errors, self.cards
        );
        for (value, n) in [
            ("accepted", self.accepted),
            ("rejected", self.rejected),
            ("error", self.errors),
        ] {
            let _ = write!(s, "<option value=\"{value}\">{value} ({n})</option>");
        }
        let _ = write!(
            s,
            "</select></label>\n<label>failed check <select id=\"f-check\" disabled>\
             <option value=\"\">any ({})</option>",
            self.cards
        );
        // most failed first: the reviewer's first question
        let mut by_count: Vec<(&String, &usize)> = self.failures.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        for (name, n) in by_count {
            let name = escape(name);
            let _ = write!(s, "<option value=\"{name}\">{name} ({n})</option>");
        }
        let _ = writeln!(
            s,
            "</select></label>\n<span id=\"f-shown\" aria-live=\"polite\">{} shown</span>\n\
             </nav>\n<script>{SCRIPT}</script>\n</body>\n</html>",
            self.cards
        );
        self.out.write_all(s.as_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Decodes a photo for [`ReviewPage::add`]: a JPEG at the smallest DCT scale (1/2, 1/4,
/// 1/8) whose longer side still covers [`THUMBNAIL_SIDE`], other formats at full size;
/// EXIF orientation applied, as verification did.
///
/// # Errors
/// The decoder's errors ([`crate::decode::load`] with default options and limits).
pub fn decode_for_review(bytes: &[u8]) -> Result<Frame> {
    crate::decode::load_covering(bytes, THUMBNAIL_SIDE)
}

/// The annotated thumbnail of `photo` as (width, height, JPEG bytes): scaled down to
/// [`THUMBNAIL_SIDE`] (never up), drawn on with [`annotate`], without annotate's panel of
/// failed checks (the card's table says them, legibly).
fn thumbnail(
    resizer: &mut fir::Resizer,
    photo: &Frame,
    report: &PhotoReport,
) -> Result<(u32, u32, Vec<u8>)> {
    let (w, h) = (photo.width(), photo.height());
    let long = w.max(h);
    let small = if long > THUMBNAIL_SIDE {
        let k = THUMBNAIL_SIDE as f64 / long as f64;
        let tw = ((w as f64 * k).round() as u32).clamp(1, THUMBNAIL_SIDE);
        let th = ((h as f64 * k).round() as u32).clamp(1, THUMBNAIL_SIDE);
        let src = fir::images::ImageRef::new(w, h, photo.as_bytes(), fir::PixelType::U8x3)
            .map_err(|e| Error::invalid(format!("thumbnail source: {e}")))?;
        let mut dst = fir::images::Image::new(tw, th, fir::PixelType::U8x3);
        let opts = fir::ResizeOptions::new()
            .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear));
        resizer
            .resize(&src, &mut dst, &opts)
            .map_err(|e| Error::invalid(format!("thumbnail {w}x{h} -> {tw}x{th}: {e}")))?;
        Frame::new(tw, th, dst.into_vec())?
    } else {
        photo.clone()
    };
    let drawn = annotate(&small, report);
    let (tw, th) = (small.width(), small.height());
    let photo_bytes = tw as usize * th as usize * 3;
    let top = drawn
        .as_bytes()
        .get(..photo_bytes)
        .ok_or_else(|| Error::invalid("annotated thumbnail smaller than the photo"))?;
    let jpeg = Frame::new(tw, th, top.to_vec())?.encode_jpeg(THUMBNAIL_QUALITY)?;
    Ok((tw, th, jpeg))
}

/// The card's text: name, verdict, facts, error, failed checks, the other checks folded,
/// warnings.
fn card_text(s: &mut String, r: &PhotoReport, verdict: &str, note: Option<&str>) {
    let _ = write!(
        s,
        "<div class=\"info\">\n<h2>{}</h2>\n<p class=\"meta\"><span class=\"badge {verdict}\">{verdict}</span>",
        escape(&r.name)
    );
    if r.verdict != Verdict::Error {
        let faces = r.faces.len();
        let _ = write!(
            s,
            " &middot; {}{faces} face{} &middot; {}&times;{} px",
            if r.faces_complete { "" } else { "&ge;" },
            if faces == 1 { "" } else { "s" },
            r.width,
            r.height
        );
    }
    let _ = writeln!(
        s,
        " &middot; profile {}{}</p>",
        escape(&r.profile),
        if r.cached { " &middot; cached" } else { "" }
    );
    if let Some(e) = &r.error {
        let _ = writeln!(
            s,
            "<p class=\"error\"><code>{}</code> {}</p>",
            escape(&e.code),
            escape(&e.message)
        );
    }
    if let Some(n) = note {
        let _ = writeln!(s, "<p class=\"error\">{}</p>", escape(n));
    }
    let failed: Vec<&Check> = r
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .collect();
    let rest: Vec<&Check> = r
        .checks
        .iter()
        .filter(|c| c.status != CheckStatus::Fail)
        .collect();
    if !failed.is_empty() {
        checks_table(s, &failed);
    }
    if !rest.is_empty() {
        let passed = rest
            .iter()
            .filter(|c| c.status == CheckStatus::Pass)
            .count();
        let _ = writeln!(
            s,
            "<details><summary>{passed} passed, {} skipped</summary>",
            rest.len() - passed
        );
        checks_table(s, &rest);
        s.push_str("</details>\n");
    }
    if !r.warnings.is_empty() {
        s.push_str("<ul class=\"warn\">");
        for w in &r.warnings {
            let _ = write!(s, "<li>{}</li>", escape(w));
        }
        s.push_str("</ul>\n");
    }
    s.push_str("</div>\n");
}

fn checks_table(s: &mut String, checks: &[&Check]) {
    s.push_str(
        "<table><thead><tr><th>check</th><th>status</th><th>value</th><th>min</th><th>max</th>\
         <th>unit</th><th>clause</th><th>message</th></tr></thead><tbody>\n",
    );
    for c in checks {
        let status = match c.status {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Skipped => "skipped",
        };
        let _ = writeln!(
            s,
            "<tr class=\"{status}\"><td>{}</td><td>{status}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.name),
            num(c.value),
            num(c.min),
            num(c.max),
            escape(&c.unit),
            escape(&c.clause),
            escape(&c.message)
        );
    }
    s.push_str("</tbody></table>\n");
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Accepted => "accepted",
        Verdict::Rejected => "rejected",
        Verdict::Error => "error",
    }
}

/// A check name as a filter token: whitespace would split it in `data-failed`.
fn token(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

/// A value as the card shows it: at most 3 decimals, trailing zeros dropped; `—` for none.
fn num(v: Option<f64>) -> String {
    let Some(v) = v else {
        return "&mdash;".into();
    };
    if !v.is_finite() {
        return v.to_string();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// `s` safe in HTML text and in double- or single-quoted attribute values.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Face;
    use crate::verify::report::{StageTimes, REPORT_SCHEMA};

    fn check(name: &str, status: CheckStatus) -> Check {
        Check {
            name: name.into(),
            value: Some(0.625),
            min: Some(0.7),
            max: None,
            unit: "ratio".into(),
            status,
            clause: "ICAO 9303-3 5.2".into(),
            message: format!("{name}: 0.62 < 0.70"),
        }
    }

    fn report(name: &str, verdict: Verdict, failed: &[&str]) -> PhotoReport {
        let mut checks: Vec<Check> = failed.iter().map(|f| check(f, CheckStatus::Fail)).collect();
        checks.push(check("roll", CheckStatus::Pass));
        checks.push(check("mouth_closed", CheckStatus::Skipped));
        PhotoReport {
            schema_version: REPORT_SCHEMA,
            engine_version: crate::VERSION.into(),
            build_id: crate::BUILD_ID.into(),
            name: name.into(),
            path: None,
            verdict,
            failed: failed.iter().map(|f| f.to_string()).collect(),
            error: None,
            profile: "passport".into(),
            profile_hash: String::new(),
            models_hash: String::new(),
            pipeline_hash: String::new(),
            width: 1000,
            height: 800,
            checks,
            faces: vec![Face {
                x: 300.0,
                y: 200.0,
                width: 400.0,
                height: 400.0,
                score: 0.9,
            }],
            faces_complete: true,
            subject: None,
            timings: StageTimes::default(),
            device: crate::Device::Cpu,
            cached: false,
            warnings: vec![],
        }
    }

    fn error_report(name: &str, error: &str) -> PhotoReport {
        let mut r = report(name, Verdict::Error, &[]);
        r.error = Some(crate::verify::ReportError {
            code: "decode".into(),
            message: error.into(),
            retryable: false,
        });
        r.checks.clear();
        r.faces.clear();
        r.width = 0;
        r.height = 0;
        r
    }

    fn page(cards: &[(PhotoReport, Option<Frame>)]) -> String {
        let mut p = ReviewPage::new(Vec::new(), "review <1> & \"2\"").unwrap();
        for (r, f) in cards {
            p.add(r, f.as_ref()).unwrap();
        }
        String::from_utf8(p.finish().unwrap()).unwrap()
    }

    /// The `(width, height)` of each embedded thumbnail, decoded.
    fn thumbnails(html: &str) -> Vec<(u32, u32)> {
        use base64::Engine as _;
        html.split("data:image/jpeg;base64,")
            .skip(1)
            .map(|rest| {
                let b64 = &rest[..rest.find('"').unwrap()];
                let jpeg = STANDARD.decode(b64).unwrap();
                let img = image::load_from_memory(&jpeg).unwrap();
                (img.width(), img.height())
            })
            .collect()
    }

    #[test]
    fn names_messages_and_errors_are_escaped() {
        let evil = "<script>alert(1)</script>&\"x'\nline2.jpg";
        let mut r = report(evil, Verdict::Rejected, &["a<b>"]);
        r.warnings.push("<img src=x onerror=alert(2)>".into());
        r.profile = "</title><script>".into();
        let e = error_report(evil, "bad <b>jpeg</b> & \"more\"");
        let html = page(&[(r, None), (e, Some(Frame::synthetic(64, 64, 1)))]);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;x&#39;\nline2.jpg"));
        assert!(!html.contains("<script>alert"), "raw name in the page");
        assert!(!html.contains("<img src=x"), "raw warning in the page");
        assert!(
            !html.contains("</title><script>"),
            "raw profile in the page"
        );
        assert!(!html.contains("<b>jpeg"), "raw error in the page");
        assert!(html.contains("bad &lt;b&gt;jpeg&lt;/b&gt; &amp; &quot;more&quot;"));
        assert!(html.contains("<title>review &lt;1&gt; &amp; &quot;2&quot;</title>"));
        // the check's name in data-failed and in the dropdown
        assert!(html.contains("data-failed=\"a&lt;b&gt;\""));
        assert!(html.contains("<option value=\"a&lt;b&gt;\">a&lt;b&gt; (1)</option>"));
        // the only scripts are the page's own
        assert_eq!(html.matches("<script").count(), 1);
    }

    #[test]
    fn the_filters_count_verdicts_and_failed_checks() {
        let cards = vec![
            (report("a.jpg", Verdict::Accepted, &[]), None),
            (report("b.jpg", Verdict::Rejected, &["faces"]), None),
            (
                report("c.jpg", Verdict::Rejected, &["faces", "head_height"]),
                None,
            ),
            (
                report("d.jpg", Verdict::Rejected, &["head height", "faces"]),
                None,
            ),
            (report("e.jpg", Verdict::Accepted, &[]), None),
            (error_report("f.jpg", "unreadable"), None),
        ];
        let html = page(&cards);
        for want in [
            "<p>6 photos: 2 accepted, 3 rejected, 1 errors</p>",
            "<option value=\"all\">all (6)</option>",
            "<option value=\"accepted\">accepted (2)</option>",
            "<option value=\"rejected\">rejected (3)</option>",
            "<option value=\"error\">error (1)</option>",
            "<option value=\"\">any (6)</option>",
            "<option value=\"faces\">faces (3)</option>",
            // a name with a space is one token
            "<option value=\"head_height\">head_height (2)</option>",
            "data-verdict=\"rejected\" data-failed=\"head_height faces\"",
            "data-verdict=\"accepted\" data-failed=\"\"",
            "data-verdict=\"error\" data-failed=\"\"",
        ] {
            assert!(html.contains(want), "missing {want}");
        }
        // most failed first
        assert!(html.find(">faces (3)<").unwrap() < html.find(">head_height (2)<").unwrap());
        // the controls work only with the script, which enables them
        assert!(html.contains("id=\"f-verdict\" disabled"));
        assert_eq!(html.matches("<article").count(), 6);
    }

    #[test]
    fn failed_checks_come_first_with_value_and_range_the_rest_folded() {
        let html = page(&[(report("a.jpg", Verdict::Rejected, &["head_height"]), None)]);
        let fail = html
            .find("<tr class=\"fail\"><td>head_height</td><td>fail</td><td class=\"n\">0.625</td><td class=\"n\">0.7</td><td class=\"n\">&mdash;</td><td>ratio</td><td>ICAO 9303-3 5.2</td><td>head_height: 0.62 &lt; 0.70</td></tr>")
            .expect("the failed check's row");
        let details = html
            .find("<details><summary>1 passed, 1 skipped</summary>")
            .unwrap();
        assert!(fail < details);
        assert!(html[details..].contains("<tr class=\"pass\"><td>roll</td>"));
        assert!(html[details..].contains("<tr class=\"skipped\"><td>mouth_closed</td>"));
        assert_eq!(num(Some(-0.0001)), "0");
        assert_eq!(num(Some(12.0)), "12");
        assert_eq!(num(Some(f64::NAN)), "NaN");
    }

    #[test]
    fn an_error_card_shows_the_error_and_no_image() {
        let e = error_report("broken.jpg", "jpeg: unexpected end of data");
        let html = page(&[(e, Some(Frame::synthetic(400, 300, 2)))]);
        assert!(html.contains("<span class=\"badge error\">error</span>"));
        assert!(html
            .contains("<p class=\"error\"><code>decode</code> jpeg: unexpected end of data</p>"));
        assert!(!html.contains("<img"));
        assert!(!html.contains("0&times;0"), "no size for an unread photo");
    }

    #[test]
    fn thumbnails_are_scaled_down_only_and_embedded() {
        let cards = vec![
            (
                report("big.jpg", Verdict::Rejected, &["faces"]),
                Some(Frame::synthetic(1000, 800, 3)),
            ),
            (
                report("small.jpg", Verdict::Accepted, &[]),
                Some(Frame::synthetic(200, 160, 4)),
            ),
            (report("none.jpg", Verdict::Accepted, &[]), None),
        ];
        let html = page(&cards);
        // annotate's panel is cut off: the thumbnail is the photo's size
        assert_eq!(thumbnails(&html), vec![(360, 288), (200, 160)]);
        assert!(html.contains("width=\"360\" height=\"288\""));
        assert_eq!(html.matches("<img").count(), 2);
    }

    #[test]
    fn the_page_is_one_offline_document() {
        let empty = page(&[]);
        assert!(empty.contains("<p>0 photos: 0 accepted, 0 rejected, 0 errors</p>"));
        let html = page(&[
            (
                report("a.jpg", Verdict::Rejected, &["faces"]),
                Some(Frame::synthetic(500, 400, 5)),
            ),
            (error_report("b.jpg", "x"), None),
        ]);
        for doc in [&empty, &html] {
            assert!(doc.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
            assert!(doc.ends_with("</html>\n"));
            assert_eq!(doc.matches("<html").count(), 1);
            assert_eq!(doc.matches("</html>").count(), 1);
            assert_eq!(doc.matches("<body>").count(), 1);
            assert_eq!(
                doc.matches("<article").count(),
                doc.matches("</article>").count()
            );
            let lower = doc.to_ascii_lowercase();
            assert!(!lower.contains("http://") && !lower.contains("https://"));
            assert!(!lower.contains("src=\"//") && !lower.contains("url("));
            assert!(lower.contains("default-src 'none'"));
        }
    }

    #[test]
    fn csp_hashes_match_the_inline_style_and_script() {
        use base64::Engine as _;
        assert_eq!(
            sha256(b"abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "FIPS 180-2's test vector"
        );
        let style = format!("sha256-{}", STANDARD.encode(sha256(STYLE.as_bytes())));
        let script = format!("sha256-{}", STANDARD.encode(sha256(SCRIPT.as_bytes())));
        assert_eq!(STYLE_HASH, style, "STYLE changed: update STYLE_HASH");
        assert_eq!(SCRIPT_HASH, script, "SCRIPT changed: update SCRIPT_HASH");
        // the page carries them as they are hashed: no escaping, no trimming
        let html = page(&[]);
        assert!(html.contains(&format!("<style>{STYLE}</style>")));
        assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
    }

    /// SHA-256 (FIPS 180-4), for the CSP hashes only.
    fn sha256(data: &[u8]) -> [u8; 32] {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let mut h: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
        for block in msg.chunks(64) {
            let mut w = [0u32; 64];
            for (i, word) in block.chunks(4).enumerate() {
                w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
            for i in 0..64 {
                let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                hh = g;
                g = f;
                f = e;
                e = d.wrapping_add(t1);
                d = c;
                c = b;
                b = a;
                a = t1.wrapping_add(t2);
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
                *x = x.wrapping_add(y);
            }
        }
        let mut out = [0u8; 32];
        for (o, x) in out.chunks_mut(4).zip(h) {
            o.copy_from_slice(&x.to_be_bytes());
        }
        out
    }
}
