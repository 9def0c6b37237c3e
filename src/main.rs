// A plan of thousands of steps is millions of small strings: mimalloc makes
// allocating them about a third cheaper than glibc's malloc (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let code = multiarch::cli::main_with(
        std::env::args_os().collect(),
        multiarch::Environment::from_process(),
    );
    std::process::exit(code);
}
