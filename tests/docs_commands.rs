//! Every command line README.md and docs/*.md show is one the real command line takes,
//! so the docs cannot drift from the tool; the cheap ones (probe, compare and plot of
//! committed runs) also run and must exit 0.
//!
//! What counts as a command line: in a fenced code block, every line (a `\` at its end
//! continues it) that runs `acceptbench` (also `target/release/acceptbench`, and inside
//! `ssh host "…"`), `loadgen`, `cargo run --release [-p loadgen] [-- …]`, or a sweep given
//! to `scripts/kernels/run.sh --sweep "…"`; in prose, an
//! inline code span that starts with `acceptbench ` and has arguments. A span naming a
//! command alone (`acceptbench compare`) or ending in `…` (`acceptbench sweep
//! --client-hosts K …`) is a name or a fragment, not a line.
//! Lines are split as a shell would (quotes, `# comments`, `;`/`&`/`|` ending a
//! command); `$(seq -s, A B)` is expanded and the shell variables the docs use take
//! the example values in [`VARS`] — any other `$NAME` fails the test, as does `…`
//! (write a runnable line and say the rest in prose).
//!
//! Every relative link in README.md, docs/*.md and results/README.md leads to a file
//! that exists and, with `#anchor`, to a heading of that file.
//!
//! Each line goes through clap (`cli::parse`, which also names the flags given) and then the validation the
//! binary runs (`Command::from_cli`; `loadgen::Config::from_args` for loadgen's
//! flags). Refusals that depend on this machine rather than the line — a CPU it does
//! not have, a hosts file or binary that exists on the user's machine, no private
//! network namespace here — are printed to stderr and accepted.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use acceptbench::config::{Command, ConfigError};

/// Example values of the shell variables the docs' command lines use.
const VARS: &[(&str, &str)] = &[
    ("RUN", "20261206T071306Z"),
    ("h", "client1"),
    ("DIR", "/tmp/bed"),
    ("SRV", "ab-srv"),
    ("PWD", "/work/acceptbench"),
    (
        "HOSTS",
        "ssh://root@10.77.0.2,ssh://root@10.77.0.3,ssh://root@10.77.0.4",
    ),
];

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Debug, Clone, Copy, PartialEq)]
enum Program {
    Acceptbench,
    Loadgen,
}

/// One command line shown in a doc.
#[derive(Debug)]
struct Shown {
    /// `file:line` where it is shown.
    place: String,
    program: Program,
    /// Its arguments, without the program.
    args: Vec<String>,
}

/// README.md and every docs/*.md.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![Path::new(ROOT).join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("a readable docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Every command line in one doc.
fn shown_in(file: &Path) -> Vec<Shown> {
    let text = std::fs::read_to_string(file).expect("a doc file is readable");
    let name = file
        .strip_prefix(ROOT)
        .unwrap_or(file)
        .display()
        .to_string();
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            pending = None;
            continue;
        }
        if !in_block {
            for span in inline_spans(line) {
                let is_line = span.starts_with("acceptbench ")
                    && span.split_whitespace().count() >= 3
                    && !span.contains('…');
                if is_line {
                    out.extend(commands_in(&format!("{name}:{}", i + 1), span));
                }
            }
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        match line.strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                joined.push(' ');
                pending = Some((start, joined));
            }
            None => {
                joined.push_str(line);
                out.extend(commands_in(&format!("{name}:{start}"), &joined));
            }
        }
    }
    out
}

/// The inline code spans of a line of prose.
fn inline_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// The command lines in one shell line: every command of it (split at `;`, `&`, `|`)
/// that runs one of ours, looking inside quoted words (`ssh host "acceptbench …"`).
fn commands_in(place: &str, line: &str) -> Vec<Shown> {
    let words = match shell_words(line) {
        Ok(w) => w,
        // A line of other programs' shell (`RUN=$(date …)`) is none of ours.
        Err(_)
            if !["acceptbench", "loadgen", "cargo run"]
                .iter()
                .any(|p| line.contains(p)) =>
        {
            return Vec::new()
        }
        Err(why) => panic!("{place}: {why}: {line}"),
    };
    let mut out = Vec::new();
    for command in words.split(|w| matches!(w.as_str(), ";" | "&" | "|")) {
        out.extend(program_in(place, command));
    }
    out
}

/// The program of ours a command runs, and its arguments.
fn program_in(place: &str, words: &[String]) -> Vec<Shown> {
    let shown = |program, args: &[String]| Shown {
        place: place.to_string(),
        program,
        args: args.to_vec(),
    };
    if words.len() >= 3 && words[..3] == ["cargo", "run", "--release"] {
        let mut rest = &words[3..];
        let mut program = Program::Acceptbench;
        if rest.len() >= 2 && matches!(rest[0].as_str(), "-p" | "--package") {
            assert_eq!(
                rest[1], "loadgen",
                "{place}: cargo run of an unknown package"
            );
            program = Program::Loadgen;
            rest = &rest[2..];
        }
        let args = rest.strip_prefix(&["--".to_string()]).unwrap_or(rest);
        return vec![shown(program, args)];
    }
    // scripts/kernels/run.sh --sweep "ARGS": ARGS are a sweep's, run under each kernel.
    if words.iter().any(|w| w.ends_with("scripts/kernels/run.sh")) {
        return words
            .windows(2)
            .filter(|p| p[0] == "--sweep")
            .map(|p| {
                let mut args = vec!["sweep".to_string()];
                args.extend(p[1].split_whitespace().map(str::to_string));
                shown(Program::Acceptbench, &args)
            })
            .collect();
    }
    for (i, w) in words.iter().enumerate() {
        let ours = |name: &str| w == name || (w.ends_with(&format!("/{name}")) && !w.contains('='));
        if ours("acceptbench") {
            return vec![shown(Program::Acceptbench, &words[i + 1..])];
        }
        if ours("loadgen") {
            return vec![shown(Program::Loadgen, &words[i + 1..])];
        }
        if w.contains(' ') {
            let inner = commands_in(place, w);
            if !inner.is_empty() {
                return inner;
            }
        }
    }
    Vec::new()
}

/// Splits a line as a shell would: quotes, backslash escapes, a `#` comment, `;`/`&`/`|`
/// as words of their own, `$NAME` from [`VARS`] and `$(seq -s, A B)` expanded.
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let (mut single, mut double) = (false, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let quoted = single || double;
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '\\' if !single => {
                if let Some(n) = chars.next() {
                    word.get_or_insert_with(String::new).push(n);
                }
                continue;
            }
            '#' if !quoted && word.is_none() => break,
            ';' | '&' | '|' if !quoted => {
                words.extend(word.take());
                words.push(c.to_string());
                continue;
            }
            c if c.is_whitespace() && !quoted => {
                words.extend(word.take());
                continue;
            }
            '$' if !single => {
                let value = expand(&mut chars)?;
                word.get_or_insert_with(String::new).push_str(&value);
                continue;
            }
            c => {
                word.get_or_insert_with(String::new).push(c);
                continue;
            }
        }
        // A quote: the word exists even if the quotes hold nothing.
        word.get_or_insert_with(String::new);
    }
    if single || double {
        return Err("unbalanced quotes".into());
    }
    words.extend(word);
    if words.iter().any(|w| w.contains('…')) {
        return Err("'…' in a command line: write a runnable line, the rest in prose".into());
    }
    Ok(words)
}

/// What follows a `$`: a variable from [`VARS`] or `$(seq -s, A B)`.
fn expand(chars: &mut std::iter::Peekable<std::str::Chars>) -> Result<String, String> {
    if chars.peek() == Some(&'(') {
        chars.next();
        let inner: String = chars.by_ref().take_while(|&c| c != ')').collect();
        let parts: Vec<&str> = inner.split_whitespace().collect();
        return match parts.as_slice() {
            ["seq", "-s,", a, b] => {
                let (a, b): (u32, u32) = (
                    a.parse().map_err(|_| format!("$({inner}): not a number"))?,
                    b.parse().map_err(|_| format!("$({inner}): not a number"))?,
                );
                Ok((a..=b).map(|n| n.to_string()).collect::<Vec<_>>().join(","))
            }
            _ => Err(format!("$({inner}): only $(seq -s, A B) is expanded")),
        };
    }
    let braced = chars.peek() == Some(&'{');
    if braced {
        chars.next();
    }
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if !(c.is_ascii_alphanumeric() || c == '_') {
            break;
        }
        name.push(c);
        chars.next();
    }
    if braced && chars.next() != Some('}') {
        return Err(format!("${{{name}: no closing brace"));
    }
    VARS.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
        .ok_or_else(|| format!("${name}: not in the test's VARS; add an example value there"))
}

/// Why the binary would refuse this line, or None; refusals that depend on this
/// machine are printed and accepted.
fn refusal(shown: &Shown) -> Option<String> {
    let mut argv = vec![match shown.program {
        Program::Acceptbench => "acceptbench".to_string(),
        Program::Loadgen => "loadgen".to_string(),
    }];
    argv.extend(shown.args.iter().cloned());
    if shown.program == Program::Loadgen {
        return loadgen_refusal(argv);
    }
    let (cli, given) = match acceptbench::cli::parse(&argv) {
        Ok(c) => c,
        Err(e) if asks_for_help(&e) => return None,
        Err(e) => return Some(first_line(&e.to_string())),
    };
    match Command::from_cli(cli, &argv, &given) {
        Ok(Command::Loadgen(args)) => loadgen_refusal(args),
        Ok(_) => None,
        Err(e) if depends_on_machine(&e) => {
            eprintln!(
                "note: {}: refused here for a reason of this machine, not of the line: {e}",
                shown.place
            );
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

fn loadgen_refusal<T: Into<std::ffi::OsString> + Clone>(args: Vec<T>) -> Option<String> {
    match loadgen::Config::from_args(args) {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(e) if asks_for_help(&e) => None,
        Err(e) => Some(first_line(&e.to_string())),
    }
}

/// `--help` and `--version` end clap's parse with an "error" that prints them.
fn asks_for_help(e: &clap::Error) -> bool {
    use clap::error::ErrorKind;
    matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).to_string()
}

/// A refusal caused by this machine: a CPU it lacks, a file that lives on the user's
/// machine (a hosts file, a binary, an ssh config), no private network namespace.
fn depends_on_machine(e: &ConfigError) -> bool {
    match e {
        ConfigError::NoSuchCpu { .. }
        | ConfigError::NeedsRoot(_)
        | ConfigError::KernelLacks { .. } => true,
        ConfigError::ClientHosts(why) => {
            why.contains("no such file") || why.contains("cannot read the hosts file")
        }
        _ => false,
    }
}

fn all_shown() -> Vec<Shown> {
    doc_files().iter().flat_map(|f| shown_in(f)).collect()
}

#[test]
fn every_command_line_in_the_docs_parses() {
    let shown = all_shown();
    // The docs show dozens; a handful means the extraction broke.
    assert!(
        shown.len() >= 30,
        "only {} command lines found",
        shown.len()
    );
    assert!(shown.iter().any(|s| s.program == Program::Loadgen));
    let refused: Vec<String> = shown
        .iter()
        .filter_map(|s| refusal(s).map(|why| format!("{}: `{}`: {why}", s.place, s.args.join(" "))))
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {} command lines in the docs are refused:\n{}",
        refused.len(),
        shown.len(),
        refused.join("\n")
    );
}

#[test]
fn the_extraction_sees_what_a_shell_sees() {
    let w = |l: &str| shell_words(l).unwrap();
    assert_eq!(
        w(r#"ssh $h "loadgen --target 10.0.0.1:9000 --run-id $RUN" & # a comment"#),
        [
            "ssh",
            "client1",
            "loadgen --target 10.0.0.1:9000 --run-id 20261206T071306Z",
            "&"
        ]
    );
    assert_eq!(
        w("--server-cpus $(seq -s, 0 3)"),
        ["--server-cpus", "0,1,2,3"]
    );
    assert!(shell_words("acceptbench sweep --x $NOPE").is_err());
    assert!(shell_words("acceptbench sweep …").is_err());
    let s = commands_in(
        "t",
        r#"DIR=/tmp/b; sudo ACCEPTBENCH=$PWD/target/release/acceptbench x.sh up"#,
    );
    assert!(s.is_empty(), "{s:?}");
    let s = commands_in(
        "t",
        "sudo ip netns exec $SRV target/release/acceptbench probe --json",
    );
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].args, ["probe", "--json"]);
    let s = commands_in(
        "t",
        "cargo run --release -p loadgen -- --target 127.0.0.1:1",
    );
    assert_eq!((s[0].program, s[0].args.len()), (Program::Loadgen, 2));
    // A refused line is caught: the check is not vacuous.
    let bad = commands_in("t", "acceptbench sweep --modes closed --stall 2s");
    assert!(refusal(&bad[0]).is_some());
    let bad = commands_in("t", "acceptbench loadgen --target nowhere");
    assert!(refusal(&bad[0]).is_some());
}

/// Runs the docs' probe, compare and plot lines (compare and plot on committed runs;
/// plot into a temporary directory, whatever --out the line gives).
#[test]
fn cheap_command_lines_in_the_docs_run() {
    let bin = env!("CARGO_BIN_EXE_acceptbench");
    let mut ran = Vec::new();
    for s in all_shown() {
        if s.program != Program::Acceptbench {
            continue;
        }
        let Some(sub) = s.args.first().cloned() else {
            continue;
        };
        if !matches!(sub.as_str(), "probe" | "compare" | "plot") {
            continue;
        }
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let mut args = s.args.clone();
        let timeline = sub == "plot" && args.get(1).is_some_and(|a| a == "timeline");
        if timeline {
            // `plot timeline` writes one file: into the temporary directory.
            let chart = tmp.path().join("timeline.svg").display().to_string();
            match args.iter().position(|a| a == "--out") {
                Some(i) if i + 1 < args.len() => args[i + 1] = chart,
                _ => args.extend(["--out".to_string(), chart]),
            }
        } else if sub == "plot" {
            match args.iter().position(|a| a == "--out") {
                Some(i) if i + 1 < args.len() => args[i + 1] = tmp.path().display().to_string(),
                _ => args.extend(["--out".to_string(), tmp.path().display().to_string()]),
            }
        }
        let out = Process::new(bin)
            .args(&args)
            .current_dir(ROOT)
            .output()
            .expect("the acceptbench binary starts");
        assert!(
            out.status.success(),
            "{}: `acceptbench {}` exited {:?}: {}",
            s.place,
            s.args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        if sub == "plot" {
            let charts = std::fs::read_dir(tmp.path()).map_or(0, |d| d.count());
            assert!(charts > 0, "{}: plot wrote no chart", s.place);
        }
        ran.push(sub);
    }
    for sub in ["probe", "compare", "plot"] {
        assert!(
            ran.iter().any(|r| r == sub),
            "no `acceptbench {sub}` line in the docs ran"
        );
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown file's headings (outside code blocks).
fn anchors(text: &str) -> Vec<String> {
    let mut in_block = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        } else if !in_block && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// The targets of a markdown text's inline links `[text](target)`.
fn link_targets(text: &str) -> Vec<&str> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .collect()
}

#[test]
fn every_link_in_the_docs_resolves() {
    let mut files = doc_files();
    files.push(Path::new(ROOT).join("results/README.md"));
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a doc file is readable");
        let dir = file.parent().expect("a doc file has a directory");
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let dest = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            let name = file
                .strip_prefix(ROOT)
                .unwrap_or(file)
                .display()
                .to_string();
            if !dest.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if !anchor.is_empty() && dest.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&dest).expect("a linked page is readable");
                if !anchors(&text).iter().any(|a| a == anchor) {
                    broken.push(format!("{name}: {target}: no heading with that anchor"));
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert_eq!(
        slug("stall.csv columns (mode stall)"),
        "stallcsv-columns-mode-stall"
    );
}
