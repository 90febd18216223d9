//! The unprivileged user tests run dsync as (`-u`, ssh logins).

use std::process::Command;

/// The test's unprivileged user, created when missing (needs root).
pub const TEST_USER: &str = "dsynctest";

pub fn ensure_test_user() -> (u32, u32) {
    // Tests run in parallel threads; one useradd at a time.
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, TEST_USER]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    let mut why = String::new();
    if id("-u").is_none() {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                TEST_USER,
            ])
            .output()
            .expect("run useradd");
        why = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    (
        id("-u").unwrap_or_else(|| panic!("could not create user {TEST_USER}: {why}")),
        id("-g").expect("test user's group"),
    )
}
