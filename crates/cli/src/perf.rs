//! `runnel perf produce|consume|e2e` (arrives with issue 3).

use clap::Parser;

#[derive(Parser)]
pub struct PerfArgs {
    /// A broker to talk to.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
}

pub async fn run(args: PerfArgs) -> anyhow::Result<()> {
    anyhow::bail!("runnel perf is not implemented yet (broker {})", args.bootstrap)
}
