//! The configuration reader: a config file's text, and the same text as `NAME=VALUE`
//! environment variables. No input may panic; what loads must validate and render.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lago::config::{Config, Sources};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut cfg = Config::load(&Sources::default()).expect("the defaults load");
    if cfg.merge_text(text, Path::new("lago.conf")).is_ok() && cfg.validate().is_ok() {
        let _ = cfg.to_ini(true, "now");
        let _ = cfg.accel();
        let _ = lago::env::EnvOptions::from_config(&cfg);
        let _ = cfg.fetcher();
    }
    let env = text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let _ = Config::load(&Sources { env, ..Sources::default() });
});
