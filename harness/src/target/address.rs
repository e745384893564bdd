//! `ssh://USER@HOST[:PORT]`: parsing, printing, and reaching the address, each resolved
//! address tried in turn within one time budget.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `ssh://USER@HOST[:PORT]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAddress {
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl SshAddress {
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("ssh://")
            .ok_or_else(|| format!("target `{text}` is not `local` or `ssh://USER@HOST[:PORT]`"))?;
        let (user, host_port) = rest
            .split_once('@')
            .ok_or_else(|| format!("target `{text}` has no user; write ssh://USER@HOST[:PORT]"))?;
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("target `{text}`: unclosed `[` in the IPv6 address"))?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| {
                    format!("target `{text}`: after `]` comes `:PORT` or nothing")
                })?),
            };
            (host, port)
        } else {
            match host_port.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => {
                    return Err(format!(
                    "target `{text}`: write an IPv6 address in brackets, ssh://USER@[ADDRESS]:PORT"
                ))
                }
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        let port = match port {
            Some(port) => port.parse().ok().filter(|port| *port > 0).ok_or_else(|| {
                format!("target `{text}`: port `{port}` is not a number from 1 to 65535")
            })?,
            None => 22,
        };
        if user.is_empty() || host.is_empty() {
            return Err(format!("target `{text}` needs both a user and a host"));
        }
        Ok(Self {
            user: user.into(),
            host: host.into(),
            port,
        })
    }

    /// The name known-hosts files use: `host`, or `[host]:port` off port 22.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for SshAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An IPv6 address in brackets, as parse() reads it back.
        if self.host.contains(':') {
            write!(f, "ssh://{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "ssh://{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// A TCP connection to the first of the host's addresses that accepts, all within `budget`:
/// the name lookup (on a thread of its own, since getaddrinfo cannot be interrupted) and every
/// attempt. A host name that resolves to IPv6 first while sshd listens on IPv4 only still
/// connects.
pub fn connect_tcp(address: &SshAddress, budget: Duration) -> Result<TcpStream, String> {
    let deadline = Instant::now() + budget;
    let (sender, receiver) = mpsc::channel();
    let (host, port) = (address.host.clone(), address.port);
    std::thread::spawn(move || {
        let resolved = (host.as_str(), port)
            .to_socket_addrs()
            .map(|addresses| addresses.collect::<Vec<_>>());
        let _ = sender.send(resolved);
    });
    let addresses = match receiver.recv_timeout(budget) {
        Ok(Ok(addresses)) if !addresses.is_empty() => addresses,
        Ok(Ok(_)) => return Err("the host has no address".into()),
        Ok(Err(error)) => return Err(format!("cannot resolve the host: {error}")),
        Err(_) => return Err(format!("cannot resolve the host within {budget:?}")),
    };
    connect_first(&addresses, deadline)
}

/// The first address that accepts before the deadline, or every address's failure.
fn connect_first(addresses: &[SocketAddr], deadline: Instant) -> Result<TcpStream, String> {
    let mut failures = Vec::new();
    for &socket_address in addresses {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            failures.push(format!("{socket_address}: no time left"));
            break;
        }
        match TcpStream::connect_timeout(&socket_address, left) {
            Ok(stream) => return Ok(stream),
            Err(error) => failures.push(format!("{socket_address}: {error}")),
        }
    }
    if let [only] = &failures[..] {
        // One address: the message reads as before, without repeating it.
        let reason = only
            .split_once(": ")
            .map_or(only.as_str(), |(_, reason)| reason);
        return Err(format!("cannot connect: {reason}"));
    }
    Err(format!("cannot connect: {}", failures.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            SshAddress::parse("ssh://root@server").unwrap(),
            SshAddress {
                user: "root".into(),
                host: "server".into(),
                port: 22
            }
        );
        let with_port = SshAddress::parse("ssh://me@127.0.0.1:2222").unwrap();
        assert_eq!(with_port.port, 2222);
        assert_eq!(with_port.known_hosts_name(), "[127.0.0.1]:2222");
        assert_eq!(
            SshAddress::parse("ssh://me@[::1]:2022").unwrap().host,
            "::1"
        );
        assert!(SshAddress::parse("ssh://server")
            .unwrap_err()
            .contains("no user"));
        assert!(SshAddress::parse("ssh://a@b:x")
            .unwrap_err()
            .contains("port `x`"));
        for bad in ["ssh://a@h:0", "ssh://a@[::1]x", "ssh://a@::1"] {
            assert!(SshAddress::parse(bad).is_err(), "{bad}");
        }
        let v6 = SshAddress::parse("ssh://me@[2001:db8::7]:2222").unwrap();
        assert_eq!(v6.to_string(), "ssh://me@[2001:db8::7]:2222");
        assert_eq!(SshAddress::parse(&v6.to_string()).unwrap(), v6);
        assert!(SshAddress::parse("http://a@b")
            .unwrap_err()
            .contains("not `local`"));
    }

    #[test]
    fn every_address_of_a_name_is_tried_within_the_budget() {
        // As for a name whose first address (say ::1) has no sshd: the next one is tried.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        connect_first(&[closed, open], deadline).expect("the second address is reached");
        drop(listener);
        let error = connect_first(&[closed, open], deadline).unwrap_err();
        assert!(
            error.contains(&format!("{closed}: ")) && error.contains(&format!("; {open}: ")),
            "{error}"
        );
        let address = SshAddress::parse(&format!("ssh://u@localhost:{}", closed.port())).unwrap();
        let error = connect_tcp(&address, Duration::from_secs(5)).unwrap_err();
        assert!(error.starts_with("cannot connect: "), "{error}");
    }
}
