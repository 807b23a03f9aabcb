//! Turns `caas network create NAME -d DRIVER -l Subnet=... -l Gateway=... [-l Vni=N]
//! [-l VlanId=N -l ArpProxy=true -l MacNat=true]` into a `CreateNetworkRequest`, refusing
//! locally (exit 64) what central would refuse anyway, with the flag and the fix in the message.

use caas_api::name::validate_dns_label;
use caas_api::network::{
    validate_vlan_id, validate_vni, CreateNetworkRequest, Subnet, MAX_VLAN_ID, MAX_VNI,
};

use super::{CliError, DriverArg, NetworkCreateArgs};

/// The `-l` keys `network create` knows, as the help and messages spell them.
const SUBNET: &str = "Subnet";
const GATEWAY: &str = "Gateway";
const VNI: &str = "Vni";
const VLAN_ID: &str = "VlanId";
const ARP_PROXY: &str = "ArpProxy";
const MAC_NAT: &str = "MacNat";

/// What the `-l` options said, each at most once (a repeat must agree).
#[derive(Debug, Default)]
struct Options {
    subnet: Option<String>,
    gateway: Option<String>,
    vni: Option<String>,
    vlan_id: Option<String>,
    arp_proxy: Option<String>,
    mac_nat: Option<String>,
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
            CliError::bad_argument(if self.driver == DriverArg::Vlan {
                format!(
                    "network create needs a gateway: add -l Gateway=IP, the data centre's router \
                     in {subnet}"
                )
            } else {
                format!(
                    "network create needs a gateway: add -l Gateway=IP, an address inside {subnet} \
                     that every node answers for, e.g. the last one"
                )
            })
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
        let vlan_id = options
            .vlan_id
            .map(|text| parse_vlan_id(&text))
            .transpose()?;
        let arp_proxy = options
            .arp_proxy
            .map(|text| parse_switch(ARP_PROXY, &text))
            .transpose()?;
        let mac_nat = options
            .mac_nat
            .map(|text| parse_switch(MAC_NAT, &text))
            .transpose()?;
        if self.driver != DriverArg::Vlan {
            let given = [
                (VLAN_ID, vlan_id.is_some()),
                (ARP_PROXY, arp_proxy.is_some()),
                (MAC_NAT, mac_nat.is_some()),
            ];
            if let Some((key, _)) = given.into_iter().find(|(_, given)| *given) {
                return Err(CliError::bad_argument(format!(
                    "-l {key} applies to vlan networks only (-d vlan); a {} network's frames \
                     never reach the data centre's switch",
                    self.driver.as_str()
                )));
            }
        }
        Ok(CreateNetworkRequest {
            name: self.name.clone(),
            driver: self.driver.as_str().to_string(),
            subnet,
            gateway,
            vni,
            vlan_id,
            arp_proxy,
            mac_nat,
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
                        "-l {item:?}: expected KEY=VALUE (Subnet=CIDR, Gateway=IP, Vni=N, \
                         VlanId=N, ArpProxy=true|false, MacNat=true|false) or a bare subnet like \
                         192.168.0.0/19"
                    )))
                }
            };
            let (name, slot) = match key.to_ascii_lowercase().as_str() {
                "subnet" => (SUBNET, &mut options.subnet),
                "gateway" => (GATEWAY, &mut options.gateway),
                "vni" => (VNI, &mut options.vni),
                "vlanid" => (VLAN_ID, &mut options.vlan_id),
                "arpproxy" => (ARP_PROXY, &mut options.arp_proxy),
                "macnat" => (MAC_NAT, &mut options.mac_nat),
                _ => {
                    return Err(CliError::bad_argument(format!(
                        "-l {item:?}: unknown key {key:?}; network create takes -l Subnet=CIDR, \
                         -l Gateway=IP, -l Vni=N and for vlan networks -l VlanId=N, \
                         -l ArpProxy=true|false, -l MacNat=true|false (keys in any case)"
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

fn parse_vlan_id(text: &str) -> Result<u16, CliError> {
    let id = text.parse::<u16>().map_err(|_| {
        CliError::bad_argument(format!(
            "-l {VLAN_ID}={text}: not a number; a VLAN id is 1..={MAX_VLAN_ID} (leave it out for \
             an untagged access port)"
        ))
    })?;
    validate_vlan_id("vlan_id", id)
        .map_err(|e| CliError::bad_argument(format!("-l {VLAN_ID}={text}: {}", e.message)))?;
    Ok(id)
}

/// `true` or `false` (any case); nothing else, so a typo never silently means "off".
fn parse_switch(key: &str, text: &str) -> Result<bool, CliError> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(CliError::bad_argument(format!(
            "-l {key}={text}: expected true or false"
        ))),
    }
}

impl DriverArg {
    /// The wire name central expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vxlan => "vxlan",
            Self::Bridge => "bridge",
            Self::Vlan => "vlan",
        }
    }
}
