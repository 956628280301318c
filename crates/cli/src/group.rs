//! `runnel group list|describe|delete|reset-offsets` (consumer groups arrive with issue 4).

use clap::Parser;

#[derive(Parser)]
pub struct GroupArgs {
    /// A broker to talk to.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
}

pub async fn run(args: GroupArgs) -> anyhow::Result<()> {
    anyhow::bail!("consumer groups are not implemented yet (broker {})", args.bootstrap)
}
