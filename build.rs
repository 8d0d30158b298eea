//! Records the git commit the binary is built from, for `hapcert --version`: an operator reading a bug report, or a
//! package's binary, can then tell exactly which source it came from. HAPCERT_GIT_COMMIT, when set, wins (a build
//! from a source tarball has no .git to ask); without either the commit reads "unknown", and the build goes on.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=HAPCERT_GIT_COMMIT");
    let commit = std::env::var("HAPCERT_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=HAPCERT_GIT_COMMIT={commit}");
    // Run again when HEAD moves: HEAD itself (a checkout), the branch it names (a commit) and packed-refs (a gc). Each
    // path is asked of git, since a worktree keeps HEAD apart from the shared refs. Only existing files are named,
    // as cargo would otherwise run this script on every build.
    let mut watched = vec![
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["rev-parse", "--git-path", "packed-refs"]),
    ];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    for path in watched.into_iter().flatten() {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
