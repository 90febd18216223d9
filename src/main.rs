fn main() {
    std::process::exit(dsync::cli::main());
}
