//! `lago envs`: the environments lago made for this user on this host, and the end of those left
//! behind (lago's own verb).

use std::time::Duration;

use lago::prefix::register::{Listed, format_age, parse_duration};
use lago::session::{Location, Session};

use crate::context::Context;
use crate::error::CliError;

/// List the environments lago made for you on this host, whatever made them (lago's own verb)
///
/// Every prefix made by `lago init`, `lago fork`, the Python SDK or the pytest plugin is in
/// lago's register (`environments.json` in lago's state directory) until it is destroyed. Lists
/// each one's workdir, prefix, providers, state (`running`, `running N/M`, `stopped`,
/// `uninitialized`, `not local`, or `gone` when its prefix was removed without lago: it is then
/// taken off the register), age, and who keeps it (a pytest test kept with `--lago-keep`, else
/// the user and command that made it), oldest first.
#[derive(Debug, clap::Args)]
pub(crate) struct EnvsArgs {
    /// Destroy the environments made at least DURATION ago (`0s`, `90m`, `2h`, `1d`, `1h30m`) as
    /// `lago destroy` would, printing each
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    destroy_older_than: Option<Duration>,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// One environment as `lago envs -f json` prints it.
#[derive(serde::Serialize)]
struct Row {
    workdir: Option<String>,
    prefix: String,
    path: String,
    provider: String,
    state: String,
    age: String,
    age_seconds: u64,
    created: String,
    kept_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<String>,
}

impl Row {
    fn of(l: &Listed) -> Self {
        let e = &l.entry;
        let name = e.prefix.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Self {
            workdir: e.workdir.as_ref().map(|w| w.display().to_string()),
            prefix: if e.workdir.is_some() { name } else { e.prefix.display().to_string() },
            path: e.prefix.display().to_string(),
            provider: l.provider.clone(),
            state: l.state.clone(),
            age: format_age(l.age),
            age_seconds: l.age.as_secs(),
            created: chrono::DateTime::from_timestamp(e.created as i64, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
            kept_by: e.keeper(),
            action: None,
        }
    }
}

pub(crate) fn cmd_envs(ctx: &mut Context, args: &EnvsArgs) -> Result<(), CliError> {
    let register = ctx.session.register();
    let listed = register.list()?;
    let Some(older) = args.destroy_older_than else {
        let rows: Vec<Row> = listed.iter().map(Row::of).collect();
        if ctx.is_default_format() {
            print_table(&rows);
        } else {
            ctx.print(&rows)?;
        }
        return Ok(());
    };
    let mut done = Vec::new();
    let mut failed = 0;
    for l in listed.iter().filter(|l| l.age >= older) {
        let mut row = Row::of(l);
        if l.gone() {
            // `list` took it off the register already.
            row.action = Some("pruned".into());
        } else {
            let location = Location { prefix_path: Some(l.entry.prefix.display().to_string()), workdir_path: None };
            let session = Session::with_config(ctx.session.config.clone(), &ctx.session.cwd, location);
            match session.destroy_prefix(&ctx.reporter) {
                Ok(()) => row.action = Some("destroyed".into()),
                Err(e) => {
                    failed += 1;
                    eprintln!("Cannot destroy {}: {}", row.path, lago::diagnose::render(&e).text());
                    continue;
                }
            }
        }
        if ctx.is_default_format() {
            let what = row.action.as_deref().unwrap_or_default();
            println!("{what} {} (age {}, {}, kept by {})", row.path, row.age, row.state, row.kept_by);
        }
        done.push(row);
    }
    if !ctx.is_default_format() {
        ctx.print(&done)?;
    }
    if failed > 0 {
        return Err(CliError::failed(format!(
            "{failed} environment{} could not be destroyed (see above)",
            if failed == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// The rows as aligned columns under a heading; nothing when there are none.
fn print_table(rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    let heading = ["WORKDIR", "PREFIX", "PROVIDER", "STATE", "AGE", "KEPT BY"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.workdir.clone().unwrap_or_else(|| "-".into()),
                r.prefix.clone(),
                r.provider.clone(),
                r.state.clone(),
                r.age.clone(),
                r.kept_by.clone(),
            ]
        })
        .collect();
    let mut widths = heading.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let mut out = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i + 1 == cols.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&heading.map(str::to_owned));
    for row in &cells {
        line(row);
    }
}
