//! Where an OpenStack user's credentials are: a `clouds.yaml` entry (named by `[openstack]
//! cloud` or `OS_CLOUD`), searched where the openstack CLI searches (`OS_CLIENT_CONFIG_FILE`,
//! `./clouds.yaml`, `~/.config/openstack/clouds.yaml`, `/etc/openstack/clouds.yaml`), or the
//! `OS_*` variables.

use std::path::PathBuf;

use serde_json::Value;

use super::OpenstackError;

/// What Keystone's password authentication needs, and where it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Where they came from (`cloud lago-test of /root/.config/openstack/clouds.yaml`, `the
    /// OS_* variables`), for messages.
    pub source: String,
    /// Keystone's URL.
    pub auth_url: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Project name.
    pub project_name: Option<String>,
    /// Project id.
    pub project_id: Option<String>,
    /// The user's domain (`Default` when unsaid).
    pub user_domain: String,
    /// The project's domain (`Default` when unsaid).
    pub project_domain: String,
    /// The region whose endpoints are used (the first of each service when unsaid).
    pub region: Option<String>,
}

/// The files searched for `clouds.yaml`, in order.
pub fn clouds_files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = env("OS_CLIENT_CONFIG_FILE").filter(|f| !f.is_empty()) {
        files.push(PathBuf::from(f));
    }
    files.push(PathBuf::from("clouds.yaml"));
    if let Some(home) = env("HOME").filter(|h| !h.is_empty()) {
        files.push(PathBuf::from(home).join(".config/openstack/clouds.yaml"));
    }
    files.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    files
}

/// The credentials for `cloud` (`[openstack] cloud`; else `OS_CLOUD`; else the `OS_*`
/// variables), `env` giving the environment's variables.
pub fn resolve(cloud: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Credentials, OpenstackError> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    let cloud = cloud.map(str::to_owned).or_else(|| var("OS_CLOUD"));
    let Some(cloud) = cloud else {
        let Some(auth_url) = var("OS_AUTH_URL") else { return Err(OpenstackError::NoCloud) };
        let need = |k: &str| var(k).ok_or_else(|| OpenstackError::MissingVariable { name: k.to_owned() });
        return Ok(Credentials {
            source: "the OS_* variables".into(),
            auth_url,
            username: need("OS_USERNAME")?,
            password: need("OS_PASSWORD")?,
            project_name: var("OS_PROJECT_NAME").or_else(|| var("OS_TENANT_NAME")),
            project_id: var("OS_PROJECT_ID"),
            user_domain: var("OS_USER_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
            project_domain: var("OS_PROJECT_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
            region: var("OS_REGION_NAME"),
        });
    };
    let files = clouds_files(env);
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        let doc: Value = yaml_serde::from_str(&text)
            .map_err(|e| OpenstackError::CloudsFile { path: file.clone(), reason: e.to_string() })?;
        let Some(entry) = doc.get("clouds").and_then(|c| c.get(&cloud)) else { continue };
        return entry_credentials(entry, &format!("cloud {cloud} of {}", file.display()), &var);
    }
    Err(OpenstackError::UnknownCloud { cloud, searched: files })
}

fn entry_credentials(
    entry: &Value,
    source: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, OpenstackError> {
    let auth = entry.get("auth").cloned().unwrap_or(Value::Null);
    let text = |v: &Value, k: &str| {
        v.get(k).and_then(|x| x.as_str().map(str::to_owned).or_else(|| x.as_number().map(|n| n.to_string())))
    };
    let need = |k: &str| {
        text(&auth, k)
            .ok_or_else(|| OpenstackError::CloudEntry { origin: source.to_owned(), missing: format!("auth.{k}") })
    };
    let domain = text(&auth, "domain_name");
    Ok(Credentials {
        source: source.to_owned(),
        auth_url: need("auth_url")?,
        username: need("username")?,
        password: text(&auth, "password").or_else(|| var("OS_PASSWORD")).ok_or_else(|| OpenstackError::CloudEntry {
            origin: source.to_owned(),
            missing: "auth.password (or OS_PASSWORD)".into(),
        })?,
        project_name: text(&auth, "project_name").or_else(|| text(&auth, "tenant_name")),
        project_id: text(&auth, "project_id"),
        user_domain: text(&auth, "user_domain_name").or_else(|| domain.clone()).unwrap_or_else(|| "Default".into()),
        project_domain: text(&auth, "project_domain_name").or(domain).unwrap_or_else(|| "Default".into()),
        region: text(entry, "region_name"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        move |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn a_cloud_is_read_from_the_first_clouds_yaml_that_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clouds.yaml");
        std::fs::write(
            &file,
            "clouds:\n  test:\n    region_name: RegionOne\n    auth:\n      auth_url: http://10.0.0.1:5000/v3\n      username: lago\n      password: secret\n      project_name: lago\n      user_domain_name: Default\n      project_domain_name: Default\n",
        )
        .unwrap();
        let env = env_of(&[("OS_CLIENT_CONFIG_FILE", file.display().to_string()), ("HOME", "/nonexistent".into())]);
        let c = resolve(Some("test"), &env).unwrap();
        assert_eq!(c.auth_url, "http://10.0.0.1:5000/v3");
        assert_eq!(c.username, "lago");
        assert_eq!(c.project_name.as_deref(), Some("lago"));
        assert_eq!(c.region.as_deref(), Some("RegionOne"));
        assert_eq!(c.source, format!("cloud test of {}", file.display()));
        let e = resolve(Some("other"), &env).unwrap_err().to_string();
        assert!(e.starts_with("No cloud named \"other\" in clouds.yaml (searched "), "{e}");
    }

    #[test]
    fn without_a_cloud_the_os_variables_are_used() {
        let env = env_of(&[
            ("OS_AUTH_URL", "http://k:5000".into()),
            ("OS_USERNAME", "u".into()),
            ("OS_PASSWORD", "p".into()),
            ("OS_PROJECT_NAME", "pr".into()),
        ]);
        let c = resolve(None, &env).unwrap();
        assert_eq!((c.username.as_str(), c.user_domain.as_str()), ("u", "Default"));
        assert!(matches!(resolve(None, &env_of(&[])), Err(OpenstackError::NoCloud)));
        let e = resolve(None, &env_of(&[("OS_AUTH_URL", "http://k".into())])).unwrap_err();
        assert_eq!(e.to_string(), "OS_AUTH_URL is set, OS_USERNAME is not: the OS_* variables are incomplete");
    }
}
