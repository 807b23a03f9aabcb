//! Turns `caas network create NAME -d DRIVER -l Subnet=... -l Gateway=... [-l Vni=N]` into a
//! `CreateNetworkRequest`, refusing locally (exit 64) what central would refuse anyway, with
//! the flag and the fix in the message.

use caas_api::name::validate_dns_label;
use caas_api::network::{validate_vni, CreateNetworkRequest, Subnet, MAX_VNI};

use super::{CliError, DriverArg, NetworkCreateArgs};

/// The `-l` keys `network create` knows, as the help and messages spell them.
const SUBNET: &str = "Subnet";
const GATEWAY: &str = "Gateway";
const VNI: &str = "Vni";

/// What the `-l` options said, each at most once (a repeat must agree).
#[derive(Debug, Default)]
struct Options {
    subnet: Option<String>,
    gateway: Option<String>,
    vni: Option<String>,
}

impl NetworkCreateArgs {
    pub fn to_request(&self) -> Result<CreateNetworkRequest, CliError> {
        validate_dns_label("name", &self.name)
            .map_err(|e| CliError::bad_argument(format!("network name: {}", e.message)))?;
        let options = self.options()?;
        let subnet = options.subnet.ok_or_else(|| {
            CliError::bad_argument(
                "network create needs a subnet: add -l Subnet=CIDR, e.g. -l Subnet=192.168.0.0/19",
            )
        })?;
        let gateway = options.gateway.ok_or_else(|| {
            CliError::bad_argument(format!(
                "network create needs a gateway: add -l Gateway=IP, an address inside {subnet} \
                 that every node answers for, e.g. the last one"
            ))
        })?;
        Subnet::parse(&subnet, &gateway).map_err(|e| {
            let (key, value) = if e.field == "gateway" {
                (GATEWAY, &gateway)
            } else {
                (SUBNET, &subnet)
            };
            CliError::bad_argument(format!("-l {key}={value}: {}", e.message))
        })?;
        let vni = options.vni.map(|text| parse_vni(&text)).transpose()?;
        Ok(CreateNetworkRequest {
            name: self.name.clone(),
            driver: self.driver.as_str().to_string(),
            subnet,
            gateway,
            vni,
        })
    }

    fn options(&self) -> Result<Options, CliError> {
        let mut options = Options::default();
        for item in &self.options {
            let (key, value) = match item.split_once('=') {
                Some(pair) => pair,
                // Ops write the subnet bare: `-l 192.168.0.0/19`.
                None if item.contains('/') => (SUBNET, item.as_str()),
                None => {
                    return Err(CliError::bad_argument(format!(
                        "-l {item:?}: expected KEY=VALUE (Subnet=CIDR, Gateway=IP or Vni=N) or a \
                         bare subnet like 192.168.0.0/19"
                    )))
                }
            };
            let (name, slot) = match key.to_ascii_lowercase().as_str() {
                "subnet" => (SUBNET, &mut options.subnet),
                "gateway" => (GATEWAY, &mut options.gateway),
                "vni" => (VNI, &mut options.vni),
                _ => {
                    return Err(CliError::bad_argument(format!(
                        "-l {item:?}: unknown key {key:?}; network create takes -l Subnet=CIDR, \
                         -l Gateway=IP and -l Vni=N (keys in any case)"
                    )))
                }
            };
            let value = value.trim().to_string();
            match slot {
                Some(earlier) if *earlier != value => {
                    return Err(CliError::bad_argument(format!(
                        "-l {name} is given twice ({earlier} and {value}); give it once"
                    )))
                }
                _ => *slot = Some(value),
            }
        }
        Ok(options)
    }
}

fn parse_vni(text: &str) -> Result<u32, CliError> {
    let vni = text.parse::<u32>().map_err(|_| {
        CliError::bad_argument(format!(
            "-l {VNI}={text}: not a number; a VNI is 1..={MAX_VNI} (leave -l {VNI} out and \
             central picks a free one)"
        ))
    })?;
    validate_vni("vni", vni).map_err(|e| {
        CliError::bad_argument(format!(
            "-l {VNI}={text}: {} (leave -l {VNI} out and central picks a free one)",
            e.message
        ))
    })?;
    Ok(vni)
}

impl DriverArg {
    /// The wire name central expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vxlan => "vxlan",
            Self::Bridge => "bridge",
        }
    }
}
