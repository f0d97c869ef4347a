//! The `syncfabric` command-line tool: create and edit Enpass vaults, and sync them
//! through storage you own. Run `syncfabric --help`, or `syncfabric <command> --help`.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    cli::init_logging(args.verbose);
    let json = args.json;
    let code = match cli::run(args) {
        Ok(()) => 0,
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": e.to_string() }));
            } else {
                // An error can carry a server's words or a vault's text.
                eprintln!("error: {}", cli::escape::for_terminal(&e.to_string()));
                if let Some(hint) = cli::hint_for(e.as_ref()) {
                    eprintln!("{hint}");
                }
            }
            1
        }
    };
    std::process::exit(code);
}
