//! Records the git commit the binary was built from, for sweep manifests.
//!
//! The files watched are the ones git itself reads (`git rev-parse --git-path`), so in a worktree, whose `.git` is a
//! file, the crate is not rebuilt on every cargo command because `.git/HEAD` is missing; outside a git checkout
//! nothing but this script is watched.
fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_default();
    println!("cargo:rustc-env=SINGLORA_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
    // HEAD, and the branch it names: its loose ref if there is one, else packed-refs and the folder a new loose ref
    // would appear in. Other branches' commits do not trigger a rebuild.
    let mut watched = vec!["HEAD".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let loose = git(&["rev-parse", "--git-path", &branch]);
        if loose
            .as_deref()
            .is_some_and(|p| std::path::Path::new(p).exists())
        {
            watched.push(branch);
        } else {
            watched.push("packed-refs".into());
            watched.push("refs/heads".into());
        }
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}
