//! The command-line contract (docs/cli.md), on the real `veridoc` binary: exit statuses,
//! quiet broken pipes, streamed JSON Lines that stay valid after SIGINT, every report
//! valid against docs/report.schema.json, inputs from stdin, lists and recursive
//! directories, stacked preprocessing with its manifest, profiles, and no Mesa noise.

mod common;
mod schema;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_veridoc");

fn veridoc(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    c
}

fn run(args: &[&str]) -> Output {
    veridoc(args).output().expect("run veridoc")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A compliant passport photo of the corpus (accepted) and a group photo (rejected).
fn photos(test: &str) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let a = common::assets_or_skip(test)?;
    let ok = a.join("corpus/samples/clm_audrey_compliant_01.jpg");
    let rejected = a.join("photos/biden.jpg");
    if !ok.exists() {
        assert!(
            std::env::var("VERIDOC_REQUIRE_ASSETS").as_deref() != Ok("1"),
            "{test}: corpus missing (scripts/make-corpus.sh)"
        );
        eprintln!("SKIPPED {test}: corpus missing (scripts/make-corpus.sh)");
        return None;
    }
    Some((ok, rejected, a.join("photos")))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Checks every line of a JSON Lines output: reports valid against the schema, then one
/// summary line last. Returns the reports and the summary.
fn check_jsonl(body: &str) -> (Vec<Value>, Value) {
    let (report, summary) = schema::report_schemas();
    let mut reports = Vec::new();
    let mut last = None;
    for (i, line) in body.lines().enumerate() {
        assert!(last.is_none(), "line {i} after the summary");
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {i} is not complete JSON ({e}): {line}"));
        if let Some(s) = v.get("summary") {
            let errors: Vec<String> = summary.iter_errors(s).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "summary invalid: {errors:?}");
            last = Some(s.clone());
        } else {
            let errors: Vec<String> = report.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "report {i} invalid: {errors:?}\n{line}");
            reports.push(v);
        }
    }
    (reports, last.expect("a summary line last"))
}

#[test]
fn exit_statuses_are_a_contract() {
    let Some((ok, rejected, _)) = photos("exit_statuses_are_a_contract") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 0: accepted
    let o = run(&["verify", "--device", "cpu", "-q", s(&ok)]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    // 0: rejected photos are a result, not a failure, unless asked
    let o = run(&["verify", "--device", "cpu", "-q", s(&rejected)]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    // 1: --fail-on rejected
    let o = run(&[
        "verify",
        "--device",
        "cpu",
        "-q",
        "--fail-on",
        "rejected",
        s(&ok),
        s(&rejected),
    ]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    // 3: an item could not be processed (it gets its report; the rest are verified)
    let missing = dir.path().join("missing.jpg");
    let jsonl = dir.path().join("r.jsonl");
    let html = dir.path().join("review.html");
    let o = run(&[
        "verify",
        "--device",
        "cpu",
        "-q",
        "--jsonl",
        s(&jsonl),
        "--html",
        s(&html),
        s(&missing),
        s(&ok),
    ]);
    assert_eq!(code(&o), 3, "{}", text(&o.stderr));
    let (reports, summary) = check_jsonl(&std::fs::read_to_string(&jsonl).unwrap());
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["error"]["code"], "not_found");
    assert!(reports[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("missing.jpg"));
    assert_eq!(reports[0]["path"], s(&missing));
    assert_eq!(reports[1]["verdict"], "accepted");
    assert_eq!(summary["errors_by_code"]["not_found"], 1);
    // the review page has a card per photo (tests/review.rs renders one in Chromium)
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("data-verdict=\"accepted\"").count(), 1);
    assert_eq!(page.matches("data-verdict=\"error\"").count(), 1);
    assert_eq!(page.matches("data:image/jpeg;base64,").count(), 1);
    assert!(page.trim_end().ends_with("</html>"));
    // the rate counts processed photos only
    let wall_s = summary["wall_ms"].as_f64().unwrap() / 1e3;
    let rate = summary["photos_per_s"].as_f64().unwrap();
    assert!((rate * wall_s - 1.0).abs() < 1e-6, "{rate} over {wall_s} s");
    // ... and --fail-on never: 0
    let o = run(&[
        "verify",
        "--device",
        "cpu",
        "-q",
        "--fail-on",
        "never",
        s(&missing),
    ]);
    assert_eq!(code(&o), 0);
    // 2: usage errors, named
    let o = run(&["verify", "--device", "tpu", s(&ok)]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("possible values: auto, cpu, gpu"));
    // 2: an unwritable output, found before any work (no photo line printed)
    let o = run(&[
        "verify",
        "--device",
        "cpu",
        "--json",
        "/proc/veridoc/x.json",
        s(&ok),
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("--json /proc/veridoc"),
        "{}",
        text(&o.stderr)
    );
    assert!(!text(&o.stdout).contains("accepted"));
    // 2: a missing profile file is named as such
    let o = run(&["verify", "--profile", "/nonexistent/p.toml", s(&ok)]);
    assert_eq!(code(&o), 2);
    let err = text(&o.stderr);
    assert!(
        err.contains("/nonexistent/p.toml") && !err.contains("built-in"),
        "{err}"
    );
    // --version names the build
    let o = run(&["--version"]);
    assert_eq!(code(&o), 0);
    assert!(text(&o.stdout).contains(&format!("veridoc {} (build ", veridoc::VERSION)));
}

#[test]
fn a_closed_pipe_ends_quietly_and_keeps_the_files() {
    let Some((_, _, dir)) = photos("a_closed_pipe_ends_quietly_and_keeps_the_files") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("r.jsonl");
    let mut child = veridoc(&[
        "verify",
        "--device",
        "cpu",
        "--no-cache",
        "--jsonl",
        s(&jsonl),
    ])
    .args([s(&dir); 4])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // `| head -1`: read one line, close the pipe
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("photo"), "{first}");
    let status = wait(&mut child, Duration::from_secs(120));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
    assert_eq!(status, 0, "{err}");
    // what was done is kept, complete per line, with its summary
    let (reports, summary) = check_jsonl(&std::fs::read_to_string(&jsonl).unwrap());
    assert!(!reports.is_empty());
    assert_eq!(summary["photos"].as_u64(), Some(reports.len() as u64));
}

fn wait(child: &mut Child, limit: Duration) -> i32 {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("veridoc did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[test]
fn sigint_flushes_valid_lines_and_says_interrupted() {
    let Some((_, _, dir)) = photos("sigint_flushes_valid_lines_and_says_interrupted") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("r.jsonl");
    let json = tmp.path().join("r.json");
    // 20 x 27 photos, cache off: far longer than the time to the first chunk
    let mut child = veridoc(&[
        "verify",
        "--device",
        "cpu",
        "--no-cache",
        "-q",
        "--jsonl",
        s(&jsonl),
        "--json",
        s(&json),
    ])
    .args([s(&dir); 20])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // the first chunk's lines arrive before the run ends: they are streamed
    let t = Instant::now();
    while std::fs::read_to_string(&jsonl).map_or(0, |b| b.lines().count()) == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before any line"
        );
        assert!(t.elapsed() < Duration::from_secs(120), "no line streamed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let k = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    let status = wait(&mut child, Duration::from_secs(120));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status, 130, "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let (reports, summary) = check_jsonl(&std::fs::read_to_string(&jsonl).unwrap());
    assert_eq!(summary["cancelled"], true);
    assert_eq!(summary["photos"].as_u64(), Some(reports.len() as u64));
    assert!(reports.len() < 20 * 27, "{} reports", reports.len());
    // the --json document is closed properly too
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["reports"].as_array().unwrap().len(), reports.len());
    assert_eq!(doc["summary"]["cancelled"], true);
}

#[test]
fn inputs_from_stdin_lists_and_recursive_directories() {
    let Some((ok, rejected, _)) = photos("inputs_from_stdin_lists_and_recursive_directories")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // an image on standard input
    let mut child = veridoc(&["verify", "--device", "cpu", "-q", "--jsonl", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&ok).unwrap())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let (reports, _) = check_jsonl(&text(&o.stdout));
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["name"], "-");
    assert_eq!(reports[0]["path"], Value::Null);
    assert_eq!(reports[0]["verdict"], "accepted");
    // the table went to standard error: standard output is only JSON Lines
    assert!(text(&o.stderr).contains("1 photos: 1 accepted"));

    // nested directories: counted skips, sub-directories only with -r
    let root = tmp.path().join("in");
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::copy(&ok, root.join("top.jpg")).unwrap();
    std::fs::copy(&rejected, root.join("a/mid.jpg")).unwrap();
    std::fs::copy(&ok, root.join("a/b/deep.jpg")).unwrap();
    std::fs::write(root.join("a/notes.txt"), "not a photo").unwrap();
    let count = |o: &Output| check_jsonl(&text(&o.stdout)).0.len();
    let o = run(&["verify", "--device", "cpu", "-q", "--jsonl", "-", s(&root)]);
    assert_eq!(count(&o), 1);
    assert!(text(&o.stderr).contains("1 sub-directory not searched (use --recursive)"));
    let o = run(&[
        "verify",
        "--device",
        "cpu",
        "-q",
        "--jsonl",
        "-",
        "-r",
        s(&root),
    ]);
    assert_eq!(count(&o), 3);
    assert!(
        text(&o.stderr).contains("1 file(s) skipped"),
        "{}",
        text(&o.stderr)
    );

    // a list of paths
    let list = tmp.path().join("list.txt");
    std::fs::write(
        &list,
        format!(
            "# photos\n{}\n\n{}\n",
            s(&root.join("top.jpg")),
            s(&root.join("a/b/deep.jpg"))
        ),
    )
    .unwrap();
    let o = run(&[
        "verify",
        "--device",
        "cpu",
        "-q",
        "--jsonl",
        "-",
        "--files-from",
        s(&list),
    ]);
    let (reports, _) = check_jsonl(&text(&o.stdout));
    assert_eq!(reports.len(), 2);
    assert!(reports[1]["name"].as_str().unwrap().ends_with("deep.jpg"));
}

#[test]
fn mesa_says_nothing_without_xdg_runtime_dir() {
    let Some((ok, _, _)) = photos("mesa_says_nothing_without_xdg_runtime_dir") else {
        return;
    };
    let o = veridoc(&["verify", "--device", "auto", "-q", s(&ok)])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
}

/// A `.npy` file's shape and the offset of its data.
fn npy_shape(b: &[u8]) -> (Vec<usize>, usize) {
    assert_eq!(&b[..6], b"\x93NUMPY");
    let len = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + len]).unwrap();
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap();
    (
        shape
            .split(',')
            .filter(|d| !d.trim().is_empty())
            .map(|d| d.trim().parse().unwrap())
            .collect(),
        10 + len,
    )
}

#[test]
fn preprocess_stacks_with_a_manifest_and_counts_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    // same file name in two folders
    let f = common::random_frame(64, 48, 7);
    std::fs::write(a.join("x.jpg"), f.encode_jpeg(90).unwrap()).unwrap();
    std::fs::write(b.join("x.jpg"), f.encode_jpeg(90).unwrap()).unwrap();
    // a truncated JPEG: a decode error
    let jpeg = f.encode_jpeg(90).unwrap();
    std::fs::write(b.join("y.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    let out = tmp.path().join("out");
    let o = run(&[
        "preprocess",
        "--device",
        "cpu",
        "--size",
        "32x32",
        "--dtype",
        "u8",
        "--stack",
        "--out",
        s(&out),
        s(&a),
        s(&b),
    ]);
    assert_eq!(code(&o), 3, "{}", text(&o.stderr));
    let npy = std::fs::read(out.join("batch.npy")).unwrap();
    let (shape, data) = npy_shape(&npy);
    assert_eq!(shape, [3, 3, 32, 32]);
    assert_eq!(npy.len() - data, 3 * 3 * 32 * 32);
    // the failed row is zeros; the others are the (identical) image
    let row = 3 * 32 * 32;
    let rows: Vec<&[u8]> = npy[data..].chunks(row).collect();
    assert_eq!(rows[0], rows[1]);
    assert!(rows[0].iter().any(|&v| v != 0));
    assert!(rows[2].iter().all(|&v| v == 0));
    let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
    let lines: Vec<&str> = manifest.lines().collect();
    assert_eq!(lines.len(), 4, "{manifest}");
    assert!(lines[0].starts_with("index,input,path,status,output,row"));
    assert!(
        lines[1].contains(",ok,") && lines[1].contains("a/x.jpg"),
        "{}",
        lines[1]
    );
    assert!(
        lines[3].contains(",error,") && lines[3].contains(",decode,"),
        "{}",
        lines[3]
    );

    // per-file outputs: unique names, the manifest says which input is which
    let out2 = tmp.path().join("out2");
    let o = run(&[
        "preprocess",
        "--device",
        "cpu",
        "--size",
        "32x32",
        "--keep-going",
        "--out",
        s(&out2),
        s(&a),
        s(&b),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let manifest = std::fs::read_to_string(out2.join("manifest.csv")).unwrap();
    assert!(
        manifest.contains(&format!(
            "{},ok,{}",
            s(&b.join("x.jpg")),
            s(&out2.join("x_2.npy"))
        )),
        "{manifest}"
    );
    // sizes need units; nothing is persisted without --cache-dir
    let o = run(&["preprocess", "--host-budget", "12", s(&a)]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("needs a unit"));
}

#[test]
fn profiles_print_and_check() {
    let o = run(&["profile", "print", "passport"]);
    assert_eq!(code(&o), 0);
    let printed = veridoc::verify::Profile::from_toml(&text(&o.stdout)).expect("prints valid TOML");
    assert_eq!(printed, veridoc::verify::Profile::passport());
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("p.toml");
    std::fs::write(&good, text(&o.stdout)).unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nwidht = 3\n").unwrap();
    let o = run(&["profile", "check", s(&good)]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    // a profile that extends the built-in one: only what it changes
    let lenient = tmp.path().join("lenient.toml");
    std::fs::write(
        &lenient,
        "extends = \"passport\"\nname = \"lenient\"\nroll = \"off\"\nyaw = { min = -30, max = 30 }\n",
    )
    .unwrap();
    let o = run(&["profile", "print", "--format", "json", s(&lenient)]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "lenient");
    assert_eq!(v["roll"], Value::Null);
    assert_eq!(v["yaw"]["max"], 30.0);
    assert_eq!(
        v["aspect"],
        serde_json::to_value(veridoc::verify::Profile::passport().aspect).unwrap()
    );
    if let Some((ok, _, _)) = photos("profiles_print_and_check") {
        let o = run(&[
            "verify",
            "--device",
            "cpu",
            "--profile",
            s(&lenient),
            "--jsonl",
            "-",
            s(&ok),
        ]);
        let (reports, _) = check_jsonl(&text(&o.stdout));
        assert_eq!(reports[0]["profile"], "lenient");
        let roll = reports[0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "roll")
            .unwrap();
        assert_eq!(roll["status"], "skipped", "{roll}");
    }
    let o = run(&["profile", "check", s(&good), s(&bad)]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stdout).contains("bad.toml"), "{}", text(&o.stdout));
}

/// Lines of a JSON Lines file, parsed.
fn jsonl_values(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `n` distinct manifest rows in `dir` (symbolic links to the photos of `photos_dir`, in
/// turn) and the manifest listing them after a comment line.
#[cfg(unix)]
fn shard_manifest(dir: &Path, photos_dir: &Path, n: usize) -> (Vec<PathBuf>, PathBuf) {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(photos_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .collect();
    sources.sort();
    let rows: Vec<PathBuf> = (0..n)
        .map(|i| {
            let src = &sources[i % sources.len()];
            let ext = src.extension().unwrap().to_str().unwrap();
            let link = dir.join(format!("row{i:03}.{ext}"));
            std::os::unix::fs::symlink(src, &link).unwrap();
            link
        })
        .collect();
    let manifest = dir.join("manifest.txt");
    let listed: String = rows.iter().map(|p| format!("{}\n", s(p))).collect();
    std::fs::write(&manifest, format!("# {n} photos\n{listed}")).unwrap();
    (rows, manifest)
}

#[cfg(unix)]
/// Kills `kid` with SIGKILL (no chance to flush) once `partial` has a complete line, and
/// checks it left no done marker.
fn kill_after_first_commit(kid: &mut Child, partial: &Path) {
    let t = Instant::now();
    while std::fs::read_to_string(partial).map_or(0, |b| b.lines().count()) == 0 {
        assert!(
            kid.try_wait().unwrap().is_none(),
            "the shard ended before a commit"
        );
        assert!(t.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(5));
    }
    kid.kill().unwrap();
    kid.wait().unwrap();
    let marker = partial
        .to_str()
        .unwrap()
        .replace(".jsonl.partial", ".done.json");
    assert!(!Path::new(&marker).exists(), "killed after it was done");
}

#[cfg(unix)]
/// Waits for a restarted shard (status 0) and returns the rows it resumed after. The part
/// file's buffer reaches the disk before each chunk's commit, so a kill can land after
/// any number of complete lines: at least one, fewer than the slice.
fn restart(mut again: Child) -> usize {
    let status = wait(&mut again, Duration::from_secs(240));
    let mut err = String::new();
    again
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status, 0, "{err}");
    err.split("resumes after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume line: {err}"))
}

/// A temporary directory and the photos folder for a shard test, or `None` (skipped).
#[cfg(unix)]
fn shard_test(test: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    let (_, _, photos_dir) = photos(test)?;
    Some((tempfile::tempdir().unwrap(), photos_dir))
}

/// Shard `i` of three in `out`: its done marker and the lines of its part file.
#[cfg(unix)]
fn shard_part(out: &Path, i: usize) -> (Value, Vec<Value>) {
    let marker = serde_json::from_str(
        &std::fs::read_to_string(out.join(format!("part-{i}-of-3.done.json"))).unwrap(),
    )
    .unwrap();
    (
        marker,
        jsonl_values(&out.join(format!("part-{i}-of-3.jsonl"))),
    )
}

/// `veridoc ARGS --manifest MANIFEST --shard I/3 --out OUT`, started, its standard error
/// piped.
#[cfg(unix)]
fn start_shard(args: &[&str], manifest: &Path, i: usize, out: &Path) -> Child {
    veridoc(args)
        .args([
            "--manifest",
            s(manifest),
            "--shard",
            &format!("{i}/3"),
            "--out",
            s(out),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every index of three, run again when done, exits 0 at once; `foreign` (a run with
/// another manifest or spec into the same output) is refused with status 2.
#[cfg(unix)]
fn done_and_foreign(shard: impl Fn(usize) -> Child, foreign: &[&str]) {
    for i in 0..3 {
        let mut k = shard(i);
        assert_eq!(wait(&mut k, Duration::from_secs(60)), 0);
    }
    let o = run(foreign);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("another manifest"),
        "{}",
        text(&o.stderr)
    );
}

#[cfg(unix)]
#[test]
fn shards_as_local_processes_one_killed_and_restarted_cover_the_manifest_once() {
    let Some((tmp, photos_dir)) =
        shard_test("shards_as_local_processes_one_killed_and_restarted_cover_the_manifest_once")
    else {
        return;
    };
    // 150 distinct rows, 50 per shard: two chunks each
    let (rows, manifest) = shard_manifest(tmp.path(), &photos_dir, 150);
    let out = tmp.path().join("out");
    let shard = |i: usize| {
        start_shard(
            &["verify", "--device", "cpu", "--no-cache", "-q"],
            &manifest,
            i,
            &out,
        )
    };
    let mut kids: Vec<Child> = (0..3).map(shard).collect();
    kill_after_first_commit(&mut kids[0], &out.join("part-0-of-3.jsonl.partial"));
    assert!(!out.join("part-0-of-3.done.json").exists());
    for k in &mut kids[1..] {
        assert_eq!(wait(k, Duration::from_secs(240)), 0);
    }
    // restarted: it resumes after what it had written
    let resumed = restart(shard(0));
    assert!((1..50).contains(&resumed));
    // the union of the parts is the manifest, each row exactly once, in order
    let (report_schema, _) = schema::report_schemas();
    let mut names = Vec::new();
    for i in 0..3 {
        let (marker, part) = shard_part(&out, i);
        assert_eq!(marker["photos"].as_u64(), Some(part.len() as u64));
        assert_eq!(marker["rows"][0].as_u64(), Some(50 * i as u64));
        for r in &part {
            assert!(report_schema.is_valid(r), "{r}");
            names.push(r["name"].as_str().unwrap().to_string());
        }
    }
    let expected: Vec<String> = rows.iter().map(|p| s(p).to_string()).collect();
    assert_eq!(names, expected);
    // done indices exit 0 at once; another manifest under the same --out is refused
    let other = tmp.path().join("other.txt");
    std::fs::write(&other, s(&rows[0])).unwrap();
    done_and_foreign(
        shard,
        &[
            "verify",
            "--manifest",
            s(&other),
            "--shard",
            "0/3",
            "--out",
            s(&out),
        ],
    );
}

#[cfg(unix)]
#[test]
fn preprocess_shards_one_killed_and_restarted_cover_the_manifest_once() {
    let Some((tmp, photos_dir)) =
        shard_test("preprocess_shards_one_killed_and_restarted_cover_the_manifest_once")
    else {
        return;
    };
    // 300 rows, 100 per shard (four commits each): the kill after the first commit lands
    // with most of shard 0 still to do; one row that is no image
    let (mut rows, _) = shard_manifest(tmp.path(), &photos_dir, 299);
    let broken = tmp.path().join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff not a jpeg").unwrap();
    rows.insert(150, broken);
    let manifest = tmp.path().join("preprocess.txt");
    let listed: String = rows.iter().map(|p| format!("{}\n", s(p))).collect();
    std::fs::write(&manifest, listed).unwrap();
    let out = tmp.path().join("out");
    let pipeline = ["--size", "96x64", "--mode", "fill", "--dtype", "u8"];
    let flags = [
        "preprocess",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--batch",
        "4",
        "-q",
    ];
    let shard = |i: usize| start_shard(&[&flags[..], &pipeline[..]].concat(), &manifest, i, &out);
    let mut kids: Vec<Child> = (0..3).map(shard).collect();
    kill_after_first_commit(&mut kids[0], &out.join("part-0-of-3.jsonl.partial"));
    // shard 1 holds the broken row: an item error (status 3), the rest written
    assert_eq!(wait(&mut kids[1], Duration::from_secs(240)), 3);
    assert_eq!(wait(&mut kids[2], Duration::from_secs(240)), 0);
    let resumed = restart(shard(0));
    assert!((1..100).contains(&resumed));
    // the union of the parts is the manifest, each row once, in order, every ok row's
    // tensor on disk with its shape
    let mut seen = Vec::new();
    for i in 0..3 {
        let (marker, part) = shard_part(&out, i);
        assert_eq!(marker["items"].as_u64(), Some(part.len() as u64));
        assert_eq!(marker["rows"][0].as_u64(), Some(100 * i as u64));
        assert_eq!(marker["errors"].as_u64(), Some(u64::from(i == 1)));
        assert!(marker["pipeline_hash"]
            .as_str()
            .is_some_and(|h| h.len() == 64));
        for r in &part {
            let k = r["index"].as_u64().unwrap() as usize;
            assert_eq!(r["input"].as_str(), Some(s(&rows[k])));
            if k == 150 {
                assert_eq!(
                    (r["status"].as_str(), r["error"]["code"].as_str()),
                    (Some("error"), Some("decode")),
                    "{r}"
                );
                continue;
            }
            assert_eq!(r["status"], "ok", "{r}");
            assert_eq!(r["shape"], serde_json::json!([3, 64, 96]));
            let npy = std::fs::read(out.join(r["output"].as_str().unwrap())).unwrap();
            assert!(
                npy.starts_with(b"\x93NUMPY") && npy.len() > 3 * 64 * 96,
                "{r}"
            );
            seen.push(k);
        }
    }
    let expected: Vec<usize> = (0..300).filter(|&k| k != 150).collect();
    assert_eq!(seen, expected);
    // the first row the restarted shard wrote equals what a plain run writes for it
    let single = tmp.path().join("single");
    let o = run(&[
        &["preprocess", "--device", "cpu"][..],
        &pipeline[..],
        &["-q", "--out", s(&single), s(&rows[resumed])][..],
    ]
    .concat());
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let stem = rows[resumed].file_stem().unwrap().to_str().unwrap();
    assert_eq!(
        std::fs::read(single.join(format!("{stem}.npy"))).unwrap(),
        std::fs::read(out.join(format!("tensors/{resumed}.npy"))).unwrap()
    );
    // done indices exit 0 at once; another pipeline under the same --out is refused
    done_and_foreign(
        shard,
        &[
            "preprocess",
            "--size",
            "32",
            "--manifest",
            s(&manifest),
            "--shard",
            "0/3",
            "--out",
            s(&out),
        ],
    );
}
