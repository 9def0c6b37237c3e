fn main() {
    let code = multiarch::cli::main_with(
        std::env::args_os().collect(),
        multiarch::Environment::from_process(),
    );
    std::process::exit(code);
}
