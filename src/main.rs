fn main() {
    tune_allocator();
    std::process::exit(dsync::cli::main());
}

/// glibc's malloc gives each thread that allocates its own arena and
/// raises its mmap threshold after every large free, so the per-message
/// lists of a huge mailbox, built on one thread and dropped on another,
/// end up as freed memory no arena returns to the kernel: the peak
/// resident size of a 200,000-message sync was twice its peak heap. Two
/// arenas (two cores' worth of workers) and a fixed threshold (large
/// vectors always get their own mapping, given back on free) keep the
/// resident size close to what is in use.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's tunables; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}
