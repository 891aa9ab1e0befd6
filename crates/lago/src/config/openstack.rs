//! `[openstack]` of lago.conf (and `LAGO__OPENSTACK__*`): how `openstack` VMs reach their cloud.
//! The cloud's credentials themselves are where OpenStack users keep them (`clouds.yaml`,
//! `OS_*`), read by `provider/openstack/cloud.rs`.

use super::Config;

/// The `[openstack]` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenstackOptions {
    /// `cloud`: the entry of `clouds.yaml` (else `OS_CLOUD`, else the `OS_*` variables).
    pub cloud: Option<String>,
    /// `flavor`: the flavor every VM gets (else the smallest that fits each VM).
    pub flavor: Option<String>,
    /// `availability_zone`: where servers go when the VM names no host (`openstack-host`).
    pub availability_zone: Option<String>,
    /// `network`: the network lago reaches the VMs through (each gets a port on it, port 22).
    pub network: Option<String>,
}

impl OpenstackOptions {
    /// The options `config` gives.
    pub fn from_config(config: &Config) -> Self {
        let get = |key: &str| config.get("openstack", key).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        Self {
            cloud: get("cloud"),
            flavor: get("flavor"),
            availability_zone: get("availability_zone"),
            network: get("network"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_from_the_openstack_section() {
        let mut c = Config::default();
        c.set("openstack", "cloud", "lago-test");
        c.set("openstack", "network", " lago-mgmt ");
        c.set("openstack", "flavor", "");
        let o = OpenstackOptions::from_config(&c);
        assert_eq!(o.cloud.as_deref(), Some("lago-test"));
        assert_eq!(o.network.as_deref(), Some("lago-mgmt"));
        assert_eq!(o.flavor, None);
    }
}
