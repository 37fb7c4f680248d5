//! `sluice-broker [server.properties] [--override key=value]... [--cluster-id ID]
//! [--standalone | --initial-controllers LIST | --no-initial-controllers]`
//!
//! With no properties file the broker runs the embedded single-node default: broker and controller in one
//! process, data under `./data`, clients on 127.0.0.1:9092. The last three flags are Kafka's format flags for
//! a controller of a dynamic quorum (see `sluice_server::bootstrap`); they matter on its first start only.

use std::path::PathBuf;

use anyhow::{Context, bail};
use sluice_server::bootstrap::{self, Format, InitialControllers};
use sluice_server::broker;
use sluice_server::config::BrokerConfig;
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: sluice-broker [server.properties] [--override key=value]... [--cluster-id ID] \
[--standalone | --initial-controllers id@host:port:dirid,... | --no-initial-controllers] [--log-format text|json]";

struct Args {
    file: Option<PathBuf>,
    overrides: Vec<String>,
    format: Format,
    json_logs: bool,
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let mut args = Args {
        file: None,
        overrides: Vec::new(),
        format: Format::default(),
        json_logs: std::env::var("SLUICE_LOG_FORMAT").is_ok_and(|v| v == "json"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("sluice-broker {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--override" => args.overrides.push(value("--override")?),
            "--cluster-id" => args.format.cluster_id = Some(value("--cluster-id")?),
            "--standalone" | "--initial-controllers" | "--no-initial-controllers"
                if args.format.initial_controllers != InitialControllers::Unset =>
            {
                bail!(
                    "{arg}: give only one of --standalone, --initial-controllers and --no-initial-controllers"
                )
            }
            "--standalone" => args.format.initial_controllers = InitialControllers::Standalone,
            "--no-initial-controllers" => {
                args.format.initial_controllers = InitialControllers::Empty
            }
            "--initial-controllers" => {
                let list = value("--initial-controllers")?;
                args.format.initial_controllers =
                    InitialControllers::Listed(bootstrap::parse_initial_controllers(&list)?);
            }
            "--log-format" => args.json_logs = value("--log-format")? == "json",
            flag if flag.starts_with('-') => bail!("unknown option {flag}\n{USAGE}"),
            file if args.file.is_none() => args.file = Some(PathBuf::from(file)),
            extra => {
                bail!("unexpected argument {extra}: only one properties file is taken\n{USAGE}")
            }
        }
    }
    Ok(Some(args))
}

fn main() -> anyhow::Result<()> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    if args.json_logs {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let config = BrokerConfig::load(args.file.as_deref(), &args.overrides)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(broker::run(config, args.format))?;
    Ok(())
}
