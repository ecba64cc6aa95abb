//! Where notifications may go (agreements.md §7): an absolute `http`/`https` URL on a web port,
//! whose host is a public address. A merchant's address must never make the platform post into
//! its own network — loopback, private and carrier-grade NAT ranges, link-local addresses (cloud
//! metadata services), multicast — whatever the spelling: IPv4-mapped, IPv4-compatible, NAT64
//! and 6to4 IPv6 forms are looked through to the IPv4 address they carry. Names are resolved by
//! the caller (registration and every send resolve again: DNS can change) and every address
//! checked here. An operator's allow-list opens ranges for test setups and the demo.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Longest notification address accepted.
pub const MAX_URL_CHARS: usize = 512;

/// An address range, `192.168.0.0/16` or `::1/128` (a bare address is a range of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the range (an IPv4 range holds no IPv6 address and back).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_equal(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_equal(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_equal(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an address or an address/prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a prefix that is not 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> String {
        cidr.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::…`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && !matches!(ip, Ipv6Addr::UNSPECIFIED | Ipv6Addr::LOCALHOST) {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
    Cidr {
        addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        prefix,
    }
}

fn v6(segments: [u16; 8], prefix: u8) -> Cidr {
    let [a, b, c, d, e, f, g, h] = segments;
    Cidr {
        addr: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
        prefix,
    }
}

/// Why `ip` is not a public address, if it is not: the ranges of RFC 6890 and its successors
/// that a notification must not reach.
pub fn reserved(ip: IpAddr) -> Option<&'static str> {
    let ranges: [(Cidr, &str); 23] = [
        (v4(0, 0, 0, 0, 8), "an unspecified (this-network) address"),
        (v4(10, 0, 0, 0, 8), "a private address"),
        (
            v4(100, 64, 0, 0, 10),
            "a carrier-grade NAT address (cloud metadata services use it too)",
        ),
        (v4(127, 0, 0, 0, 8), "a loopback address"),
        (
            v4(169, 254, 0, 0, 16),
            "a link-local address (cloud metadata services live there)",
        ),
        (v4(172, 16, 0, 0, 12), "a private address"),
        (v4(192, 0, 0, 0, 24), "an IETF protocol address"),
        (v4(192, 0, 2, 0, 24), "a documentation address"),
        (v4(192, 88, 99, 0, 24), "a 6to4 relay address"),
        (v4(192, 168, 0, 0, 16), "a private address"),
        (v4(198, 18, 0, 0, 15), "a benchmarking address"),
        (v4(198, 51, 100, 0, 24), "a documentation address"),
        (v4(203, 0, 113, 0, 24), "a documentation address"),
        (v4(224, 0, 0, 0, 4), "a multicast address"),
        (v4(240, 0, 0, 0, 4), "a reserved or broadcast address"),
        (v6([0; 8], 128), "an unspecified address"),
        (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "a loopback address"),
        (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "a discard address"),
        (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), "a Teredo address"),
        (
            v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
            "a documentation address",
        ),
        (
            v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
            "a unique local address (cloud metadata services use it too)",
        ),
        (
            v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 9),
            "a link-local or site-local address",
        ),
        (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "a multicast address"),
    ];
    if let IpAddr::V6(v6) = ip {
        if v6.segments()[..3] == [0x64, 0xff9b, 1] {
            return Some("a local-use NAT64 address");
        }
        if let Some(v4) = embedded_v4(v6) {
            return reserved(IpAddr::V4(v4));
        }
    }
    ranges
        .iter()
        .find(|(range, _)| range.contains(ip))
        .map(|(_, why)| *why)
}

/// A notification address that passed [`AddressPolicy::check_url`]: what the caller resolves
/// (a name) or what was checked already (an address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A name, to resolve and check every address of with [`AddressPolicy::check_ip`].
    Name(String),
    /// An address, checked.
    Ip(IpAddr),
}

/// Which addresses notifications may reach: every public one, and those of the allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow: Vec<Cidr>,
}

impl AddressPolicy {
    /// Public addresses, and `allow` (for test setups and the demo: e.g. `127.0.0.0/8`).
    pub fn new(allow: Vec<Cidr>) -> Self {
        Self { allow }
    }

    /// The allow-list.
    pub fn allowed(&self) -> &[Cidr] {
        &self.allow
    }

    /// Whether notifications may reach `ip`: public, or in the allow-list (an IPv6 form that
    /// carries an IPv4 address is judged by that address).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        let carried = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        if self
            .allow
            .iter()
            .any(|range| range.contains(ip) || carried.is_some_and(|v4| range.contains(v4)))
        {
            return Ok(());
        }
        match reserved(ip) {
            Some(why) => Err(format!("must not reach {ip}: it is {why}")),
            None => Ok(()),
        }
    }

    /// Checks a notification address ([`check_form`]) and, when its host is an address, that
    /// this policy allows it. A name is returned for the caller to resolve and check.
    pub fn check_url(&self, text: &str) -> Result<Host, String> {
        let host = check_form(text)?;
        if let Host::Ip(ip) = host {
            self.check_ip(ip)?;
        }
        Ok(host)
    }
}

/// Checks the form of a notification address: an absolute `http` or `https` URL of at most
/// [`MAX_URL_CHARS`], with a host and without credentials, on port 80, 443 or an unprivileged
/// port (1024–65535) — the service will not be used to poke at mail, SSH or other system
/// services; a name of at least two labels outside `.localhost` and `.internal` (a single label
/// is looked up in the network's own search domains). Returns the host.
pub fn check_form(text: &str) -> Result<Host, String> {
    if text.chars().count() > MAX_URL_CHARS {
        return Err(format!("is longer than {MAX_URL_CHARS} characters"));
    }
    let url = url::Url::parse(text).map_err(|_| "is not a URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".to_owned());
    }
    if !matches!(url.port_or_known_default(), Some(80 | 443 | 1024..)) {
        return Err("must use port 80, 443 or 1024-65535".to_owned());
    }
    match url.host() {
        None => Err("has no host".to_owned()),
        Some(url::Host::Ipv4(ip)) => Ok(Host::Ip(ip.into())),
        Some(url::Host::Ipv6(ip)) => Ok(Host::Ip(ip.into())),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !name.contains('.') {
                Err(format!("must name a host by its full name, not {name:?}"))
            } else if name.ends_with(".localhost") || name.ends_with(".internal") {
                Err(format!("must not name an internal host ({name})"))
            } else {
                Ok(Host::Name(name))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_contain() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(!net.contains(ip("::ffff:10.1.0.1")));
        let odd: Cidr = "100.64.0.0/10".parse().unwrap();
        assert!(odd.contains(ip("100.100.100.200")));
        assert!(!odd.contains(ip("100.128.0.1")));
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("ten/8".parse::<Cidr>().is_err());
    }

    /// Every spelling of an internal address the attacker tried, and the cloud metadata ones.
    #[test]
    fn internal_addresses_are_refused_in_every_spelling() {
        let policy = AddressPolicy::default();
        for internal in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "ff02::1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:0001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(policy.check_ip(ip(internal)).is_err(), "{internal}");
        }
        for public in [
            "8.8.8.8",
            "203.0.114.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert_eq!(policy.check_ip(ip(public)), Ok(()), "{public}");
        }
    }

    #[test]
    fn the_allow_list_opens_ranges_in_every_spelling() {
        let policy = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(policy.check_ip(ip("127.0.0.1")), Ok(()));
        assert_eq!(policy.check_ip(ip("::ffff:127.0.0.1")), Ok(()));
        assert!(policy.check_ip(ip("::1")).is_err());
        assert!(policy.check_ip(ip("10.0.0.1")).is_err());
    }

    #[test]
    fn addresses_must_be_web_urls_on_sensible_ports_with_public_hosts() {
        let policy = AddressPolicy::default();
        for (ok, host) in [
            (
                "http://bu.example.com/notify",
                Host::Name("bu.example.com".into()),
            ),
            (
                "https://BU.example.com.:8443/n?x=1",
                Host::Name("bu.example.com".into()),
            ),
            ("http://8.8.8.8:40000/", Host::Ip(ip("8.8.8.8"))),
        ] {
            assert_eq!(policy.check_url(ok), Ok(host), "{ok}");
        }
        for (bad, why) in [
            ("ftp://bu.example.com/", "http or https"),
            ("mailto:a@b.com", "http or https"),
            ("bu.example.com/notify", "not a URL"),
            ("http://bu.example.com:25/", "port"),
            ("http://bu.example.com:0/", "port"),
            ("https://user:pw@bu.example.com/", "credentials"),
            ("http://bu.example.com:99999/", "not a URL"),
            ("http://169.254.169.254/latest/meta-data", "link-local"),
            ("http://0.0.0.0:8080/", "unspecified"),
            ("http://[fe80::1]:8080/", "link-local"),
            ("http://224.0.0.1:8080/", "multicast"),
            ("http://[::ffff:169.254.169.254]/", "link-local"),
            ("http://127.0.0.1:40000/", "loopback"),
            ("http://localhost:8080/", "full name"),
            ("http://metadata/computeMetadata", "full name"),
            ("http://metadata.google.internal/", "internal"),
            ("http://a.localhost/", "internal"),
        ] {
            let e = policy.check_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!("https://a.com/{}", "x".repeat(MAX_URL_CHARS));
        assert!(policy.check_url(&long).is_err());
    }
}
