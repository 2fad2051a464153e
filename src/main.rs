fn main() -> std::process::ExitCode {
    imlrecover::run()
}
