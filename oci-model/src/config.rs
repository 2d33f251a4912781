//! The image config (the blob whose digest is the image ID). It keeps
//! Docker's fields that the OCI spec lacks (Healthcheck, OnBuild, Shell,
//! ArgsEscaped) and any unknown field, so an image passes through every kiln
//! command without losing data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::platform::host_arch;

/// Docker's HEALTHCHECK settings; durations in nanoseconds as docker stores them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The `config` object inside an image config: what a container runs with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    #[serde(
        rename = "ArgsEscaped",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub args_escaped: Option<bool>,
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<Healthcheck>,
    #[serde(rename = "OnBuild", default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(rename = "Shell", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ContainerConfig {
    /// Sets `KEY=value` in Env, replacing an earlier value of the same key.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let env = self.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }

    pub fn get_env(&self, key: &str) -> Option<&str> {
        self.env
            .as_ref()?
            .iter()
            .find_map(|e| match e.split_once('=') {
                Some((k, v)) if k == key => Some(v),
                _ => None,
            })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The image config blob. Its digest is the image ID.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Docker keeps the commit/import message here; OCI has no such field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageConfig {
    /// A config for the running host's platform with no layers.
    pub fn for_host() -> Self {
        ImageConfig {
            architecture: host_arch().to_string(),
            os: "linux".to_string(),
            rootfs: RootFs {
                kind: "layers".to_string(),
                diff_ids: Vec::new(),
            },
            ..Default::default()
        }
    }

    pub fn container_config(&self) -> ContainerConfig {
        self.config.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_fields_survive_a_round_trip() {
        let raw = r#"{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"],
            "Healthcheck":{"Test":["CMD","true"],"Interval":30000000000},
            "OnBuild":["RUN echo hi"],"Shell":["/bin/ash","-c"],"ArgsEscaped":true,
            "Domainname":"x"},"rootfs":{"type":"layers","diff_ids":[]},
            "container_config":{"Hostname":"h"}}"#;
        let cfg: ImageConfig = serde_json::from_str(raw).unwrap();
        let back: Value = serde_json::to_value(&cfg).unwrap();
        let c = &back["config"];
        assert_eq!(c["Healthcheck"]["Interval"], 30000000000i64);
        assert_eq!(c["OnBuild"][0], "RUN echo hi");
        assert_eq!(c["Shell"][1], "-c");
        assert_eq!(c["ArgsEscaped"], true);
        assert_eq!(c["Domainname"], "x");
        assert_eq!(back["container_config"]["Hostname"], "h");
    }

    #[test]
    fn set_env_replaces() {
        let mut c = ContainerConfig::default();
        c.set_env("A", "1");
        c.set_env("B", "2");
        c.set_env("A", "3");
        assert_eq!(c.env.unwrap(), vec!["A=3", "B=2"]);
    }
}
