//! The original's global options (`lago --loglevel debug --workdir-path W VERB`), as the
//! configuration overrides they are.

use clap::ValueEnum;

/// Output formats of information commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutFormat {
    /// Nested `[key]:` blocks
    Default,
    /// One `a/b/c: value` line per value
    Flat,
    /// JSON
    Json,
    /// YAML
    Yaml,
    /// Graphviz DOT: the picture of an environment (`lago status` only; lago's own)
    Dot,
}

impl OutFormat {
    /// The library's format of the same name (`None` for `dot`, which only `status` prints).
    pub(crate) fn to_lib(self) -> Option<lago::output::Format> {
        match self {
            OutFormat::Default => Some(lago::output::Format::Default),
            OutFormat::Flat => Some(lago::output::Format::Flat),
            OutFormat::Json => Some(lago::output::Format::Json),
            OutFormat::Yaml => Some(lago::output::Format::Yaml),
            OutFormat::Dot => None,
        }
    }
}

/// `-f NAME`: one of lago's formats, or an output plugin's (`lago.plugins.output`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutFormatChoice {
    /// lago's own.
    Lago(OutFormat),
    /// An output plugin of the Python that has the `lago` package.
    Plugin(String),
}

/// Parses `-f NAME`: lago's formats by name, any other word as a plugin's name (checked when
/// something is printed).
fn out_format_choice(name: &str) -> Result<OutFormatChoice, String> {
    if let Ok(own) = OutFormat::from_str(name, true) {
        return Ok(OutFormatChoice::Lago(own));
    }
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Ok(OutFormatChoice::Plugin(name.to_owned()));
    }
    Err(format!("{name:?} is not an output format (default, flat, json, yaml, dot, or an output plugin's name)"))
}

/// The global options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct GlobalArgs {
    /// Log level to use
    #[arg(short = 'l', long, value_parser = ["info", "debug", "error", "warning"])]
    pub(crate) loglevel: Option<String>,
    /// How many task levels to show (negative: all)
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) logdepth: Option<i64>,
    /// Output format of information commands: default, flat, json, yaml, or an output plugin's
    /// name (`lago.plugins.output`); `dot` for `lago status` (the environment as a Graphviz graph)
    #[arg(short = 'f', long, value_parser = out_format_choice, value_name = "FORMAT")]
    pub(crate) out_format: Option<OutFormatChoice>,
    /// Path to the prefix to use, will be deprecated, use --workdir-path instead
    #[arg(short = 'p', long)]
    pub(crate) prefix_path: Option<String>,
    /// Path to the workdir to use.
    #[arg(short = 'w', long)]
    pub(crate) workdir_path: Option<String>,
    /// Name of the prefix to use.
    #[arg(short = 'P', long)]
    pub(crate) prefix_name: Option<String>,
    /// User for SSH provider.
    #[arg(long)]
    pub(crate) ssh_user: Option<String>,
    /// Password for SSH provider.
    #[arg(long)]
    pub(crate) ssh_password: Option<String>,
    /// Number of ssh time outs to wait before failing.
    #[arg(long)]
    pub(crate) ssh_tries: Option<u64>,
    /// Seconds to wait before marking SSH connection as failed.
    #[arg(long)]
    pub(crate) ssh_timeout: Option<u64>,
    /// libvirt URI, currently only system is supported.
    #[arg(long = "libvirt_url")]
    pub(crate) libvirt_url: Option<String>,
    /// libvirt user
    #[arg(long)]
    pub(crate) libvirt_user: Option<String>,
    /// libvirt password
    #[arg(long)]
    pub(crate) libvirt_password: Option<String>,
    /// Default vm type
    #[arg(long = "default_vm_type")]
    pub(crate) default_vm_type: Option<String>,
    /// Default vm provider
    #[arg(long = "default_vm_provider")]
    pub(crate) default_vm_provider: Option<String>,
    /// Default root password
    #[arg(long = "default_root_password")]
    pub(crate) default_root_password: Option<String>,
    /// Path to store created subnets configurations
    #[arg(long = "lease_dir")]
    pub(crate) lease_dir: Option<String>,
    /// Reposync dir if used
    #[arg(long)]
    pub(crate) reposync_dir: Option<String>,
    /// Hardware acceleration for VMs
    #[arg(long, value_parser = ["auto", "kvm", "tcg"])]
    pub(crate) accel: Option<String>,
    /// Do not show warnings
    #[arg(long)]
    pub(crate) ignore_warnings: bool,
}

impl GlobalArgs {
    /// Global flags as `[lago]` config overrides.
    pub(crate) fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut o: Vec<(&'static str, String)> = Vec::new();
        let mut put = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                o.push((k, v));
            }
        };
        put("loglevel", self.loglevel.clone());
        put("logdepth", self.logdepth.map(|d| d.to_string()));
        put("prefix_name", self.prefix_name.clone());
        put("ssh_user", self.ssh_user.clone());
        put("ssh_password", self.ssh_password.clone());
        put("ssh_tries", self.ssh_tries.map(|d| d.to_string()));
        put("ssh_timeout", self.ssh_timeout.map(|d| d.to_string()));
        put("libvirt_url", self.libvirt_url.clone());
        put("libvirt_user", self.libvirt_user.clone());
        put("libvirt_password", self.libvirt_password.clone());
        put("default_vm_type", self.default_vm_type.clone());
        put("default_vm_provider", self.default_vm_provider.clone());
        put("default_root_password", self.default_root_password.clone());
        put("lease_dir", self.lease_dir.clone());
        put("reposync_dir", self.reposync_dir.clone());
        put("accel", self.accel.clone());
        put("prefix_path", self.prefix_path.clone());
        put("workdir_path", self.workdir_path.clone());
        o
    }
}
