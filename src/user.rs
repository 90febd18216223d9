//! The user whose mail is synced: name, home and ids from the system's
//! passwd database (`-u USER`), or the invoking user.

use anyhow::{bail, Result};
use std::ffi::{CStr, CString};
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub home: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

/// Looks a user up by name.
pub fn lookup(name: &str) -> Result<User> {
    let cname = CString::new(name)?;
    match passwd_entry(|pwd, buf, res| unsafe {
        libc::getpwnam_r(cname.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), res)
    })? {
        Some(u) => Ok(u),
        None => bail!("user {name:?} not found in the system's user database (check -u)"),
    }
}

/// The invoking user. `$HOME` wins over the passwd entry, as for a login
/// shell, so `~` means what the user expects.
pub fn current() -> Result<User> {
    let uid = unsafe { libc::getuid() };
    let entry = passwd_entry(|pwd, buf, res| unsafe {
        libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), res)
    })?;
    let mut user = entry.unwrap_or_else(|| User {
        name: std::env::var("USER").unwrap_or_else(|_| uid.to_string()),
        home: PathBuf::from("/"),
        uid,
        gid: unsafe { libc::getgid() },
    });
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        user.home = PathBuf::from(home);
    }
    Ok(user)
}

fn passwd_entry(
    call: impl Fn(*mut libc::passwd, &mut Vec<libc::c_char>, *mut *mut libc::passwd) -> libc::c_int,
) -> Result<Option<User>> {
    let mut buf: Vec<libc::c_char> = vec![0; 16 * 1024];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    let rc = call(&mut pwd, &mut buf, &mut res);
    if rc != 0 {
        bail!(
            "reading the user database failed: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    if res.is_null() {
        return Ok(None);
    }
    let s = |p: *const libc::c_char| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    Ok(Some(User {
        name: s(pwd.pw_name),
        home: PathBuf::from(s(pwd.pw_dir)),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    }))
}

/// Becomes `user` when running as root (`-u` on a mail server): group
/// list, gid, then uid, so files are created with the user's ownership.
/// Without root only `-u` naming ourselves works: anything else would
/// write another user's mail with our ownership, so it is refused.
pub fn become_user(user: &User) -> Result<()> {
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        if user.uid != euid {
            bail!(
                "-u {}: only root can act as another user (this dsync runs as uid {euid}); \
                 log in as {} or run dsync as root",
                user.name,
                user.name
            );
        }
        return Ok(());
    }
    if user.uid == 0 {
        return Ok(());
    }
    let cname = CString::new(user.name.as_str())?;
    // The kernel forgets a parent-death signal when the ids change; a
    // local LOCATION2's side (started as root with -u) must keep it.
    let death_signal = parent_death_signal();
    let check = |rc: libc::c_int, what: &str| -> Result<()> {
        if rc != 0 {
            bail!(
                "cannot switch to user {} ({what}): {}",
                user.name,
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    };
    check(
        unsafe { libc::initgroups(cname.as_ptr(), user.gid as _) },
        "initgroups",
    )?;
    check(unsafe { libc::setgid(user.gid) }, "setgid")?;
    check(unsafe { libc::setuid(user.uid) }, "setuid")?;
    if let Some(saved) = death_signal {
        restore_parent_death_signal(saved);
    }
    std::env::set_var("HOME", &user.home);
    std::env::set_var("USER", &user.name);
    Ok(())
}

/// This process's parent-death signal, if it has one, and its parent then.
#[cfg(target_os = "linux")]
fn parent_death_signal() -> Option<(libc::c_int, libc::pid_t)> {
    let mut sig: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG writes one int where it is told.
    let rc = unsafe { libc::prctl(libc::PR_GET_PDEATHSIG, &mut sig as *mut libc::c_int) };
    (rc == 0 && sig != 0).then(|| (sig, unsafe { libc::getppid() }))
}

#[cfg(not(target_os = "linux"))]
fn parent_death_signal() -> Option<(libc::c_int, libc::pid_t)> {
    None
}

/// Sets the parent-death signal again; if the parent died meanwhile (we
/// have another one now), the signal is due at once.
#[cfg(target_os = "linux")]
fn restore_parent_death_signal((sig, parent): (libc::c_int, libc::pid_t)) {
    // SAFETY: plain system calls on this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong);
        if libc::getppid() != parent {
            libc::raise(sig);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn restore_parent_death_signal(_: (libc::c_int, libc::pid_t)) {}

#[cfg(test)]
mod tests {
    #[test]
    fn root_exists_and_unknown_user_is_a_clear_error() {
        assert_eq!(super::lookup("root").unwrap().uid, 0);
        let e = super::lookup("no-such-user-dsync").unwrap_err().to_string();
        assert!(e.contains("not found"), "{e}");
    }
}
