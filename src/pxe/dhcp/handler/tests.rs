//! The decider as tables of (request, node) → reply.

use super::*;
use crate::pxe::dhcp::wire::{MessageType as T, MIN_REPLY_LEN};
use uuid::Uuid;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x77, 0x00, 0x01];

fn settings(mode: Mode) -> Settings {
    Settings {
        mode,
        server_ip: SERVER,
        subnet_mask: Ipv4Addr::new(255, 255, 255, 0),
        router: Some(SERVER),
        dns: vec![Ipv4Addr::new(10, 77, 0, 53)],
        domain: Some("rack.test".into()),
        lease_time: 3600,
        offer_hold: 30,
        unknown_allowed: false,
        loaders: Loaders::default(),
        public_url: "http://10.77.0.1:8080".into(),
        proxy_bios: ProxyStrategy::Offer,
        proxy_uefi: ProxyStrategy::Port4011,
    }
}

fn pool() -> Leases {
    Leases::new(Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 199))
}

fn node(action: BootAction) -> NodeBoot {
    NodeBoot {
        node: Uuid::nil(),
        name: Some("n1".into()),
        state: crate::model::states::State::Deploying,
        action,
        images: Default::default(),
    }
}

fn network() -> NodeBoot {
    node(BootAction::Network(crate::pxe::NetworkBoot::InstanceKernel))
}

/// Client kinds, with the options the reference captures show.
#[derive(Clone, Copy)]
enum Kind {
    IpxeBios,
    IpxeUefi,
    OvmfPxe,
    BiosPxe,
    HttpBoot,
    Udhcpc,
}

fn request(kind: Kind, t: T, extra: &[(u8, Vec<u8>)]) -> Message {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&0xabcd_0001u32.to_be_bytes());
    b[28..34].copy_from_slice(&MAC);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    let mut m = Message::parse(&b).unwrap();
    m.set(opt::MESSAGE_TYPE, vec![t.byte()]);
    let uuid = vec![0u8; 17];
    let ipxe175 = vec![0xb1, 5, 1, 0x80, 0x86, 0x10, 0x0e, 0x13, 1, 1];
    let opts: Vec<(u8, Vec<u8>)> = match kind {
        Kind::IpxeBios => vec![
            (57, vec![0x05, 0xc0]),
            (93, vec![0, 0]),
            (60, b"PXEClient:Arch:00000:UNDI:002001".to_vec()),
            (77, b"iPXE".to_vec()),
            (55, vec![1, 3, 6, 43, 60, 66, 67, 175]),
            (175, ipxe175),
            (97, uuid),
        ],
        Kind::IpxeUefi => vec![
            (93, vec![0, 7]),
            (60, b"PXEClient:Arch:00007:UNDI:003010".to_vec()),
            (77, b"iPXE".to_vec()),
            (175, ipxe175),
        ],
        Kind::OvmfPxe => {
            m.flags = BROADCAST_FLAG;
            vec![
                (57, vec![0xff, 0x00]),
                (55, vec![1, 3, 6, 43, 60, 66, 67, 97]),
                (97, uuid),
                (94, vec![1, 3, 0]),
                (93, vec![0, 7]),
                (60, b"PXEClient:Arch:00007:UNDI:003000".to_vec()),
            ]
        }
        Kind::BiosPxe => vec![
            (93, vec![0, 0]),
            (60, b"PXEClient:Arch:00000:UNDI:002001".to_vec()),
        ],
        Kind::HttpBoot => vec![
            (93, vec![0, 16]),
            (60, b"HTTPClient:Arch:00016:UNDI:003000".to_vec()),
        ],
        Kind::Udhcpc => vec![
            (60, b"RackBootRamdisk".to_vec()),
            (55, vec![1, 3, 6, 12, 15]),
        ],
    };
    for (c, v) in opts.into_iter().chain(extra.iter().cloned()) {
        m.set(c, v);
    }
    m
}

fn src() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)
}

fn auth(req: &Message, who: Option<&NodeBoot>, s: &Settings, l: &mut Leases, now: u64) -> Outcome {
    handle(req, Port::Dhcp, src(), who, s, Some(l), now)
}

fn reply(o: &Outcome) -> &Reply {
    o.reply
        .as_ref()
        .unwrap_or_else(|| panic!("no reply: {}", o.note))
}

fn text(m: &Message, code: u8) -> Option<String> {
    m.get(code).map(|v| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn offers_per_client_kind() {
    let s = settings(Mode::Authoritative);
    let who = network();
    // (client, file, 60 echoed, 43 sent, 175 sent, 97 echoed, destination is broadcast)
    let cases = [
        (
            Kind::IpxeBios,
            "http://10.77.0.1:8080/boot.ipxe",
            None,
            false,
            true,
            true,
            false,
        ),
        (
            Kind::IpxeUefi,
            "http://10.77.0.1:8080/boot.ipxe",
            None,
            false,
            true,
            false,
            false,
        ),
        (
            Kind::OvmfPxe,
            "snponly.efi",
            Some("PXEClient"),
            true,
            false,
            true,
            true,
        ),
        (
            Kind::BiosPxe,
            "undionly.kpxe",
            Some("PXEClient"),
            true,
            false,
            false,
            false,
        ),
        (
            Kind::HttpBoot,
            "http://10.77.0.1:8080/assets/snponly.efi",
            Some("HTTPClient"),
            false,
            false,
            false,
            false,
        ),
    ];
    for (kind, file, vc, has43, has175, has97, bcast) in cases {
        let mut l = pool();
        let o = auth(&request(kind, T::Discover, &[]), Some(&who), &s, &mut l, 0);
        let r = reply(&o);
        let m = &r.msg;
        let what = format!("{file} ({})", o.note);
        assert_eq!(o.verdict, "offer", "{what}");
        assert_eq!(m.message_type(), Some(T::Offer), "{what}");
        assert_eq!(m.op, 2);
        assert_eq!(m.xid, 0xabcd_0001);
        assert!(l.contains(m.yiaddr), "{what}");
        assert_eq!(String::from_utf8_lossy(&m.file), file, "{what}");
        assert_eq!(m.siaddr, SERVER, "{what}");
        assert_eq!(m.get_ip(opt::SERVER_ID), Some(SERVER));
        assert_eq!(m.get(opt::LEASE_TIME), Some(&3600u32.to_be_bytes()[..]));
        assert_eq!(m.get_ip(opt::ROUTER), Some(SERVER));
        assert_eq!(
            m.get_ip(opt::SUBNET_MASK),
            Some(Ipv4Addr::new(255, 255, 255, 0))
        );
        assert_eq!(text(m, opt::VENDOR_CLASS).as_deref(), vc, "{what}");
        assert_eq!(
            m.get(opt::VENDOR) == Some(&[6, 1, 8, 255][..]),
            has43,
            "{what}"
        );
        assert_eq!(m.get(opt::IPXE) == Some(&[176, 1, 1][..]), has175, "{what}");
        assert_eq!(m.get(opt::CLIENT_UUID).is_some(), has97, "{what}");
        if file.starts_with("http") {
            assert_eq!(
                text(m, opt::BOOTFILE).as_deref(),
                Some(file),
                "URL also in 67"
            );
        }
        let want = if bcast {
            Dest::Broadcast
        } else {
            Dest::Direct {
                ip: m.yiaddr,
                mac: Mac(MAC),
            }
        };
        assert_eq!(r.dest, want, "{what}");
        let mut out = Vec::new();
        m.emit(&mut out);
        assert!(out.len() >= MIN_REPLY_LEN);
        assert!(out.len() <= max_reply_len(&request(kind, T::Discover, &[])));
    }
}

#[test]
fn who_gets_what() {
    let s = settings(Mode::Authoritative);
    let mut allow = settings(Mode::Authoritative);
    allow.unknown_allowed = true;
    let local = node(BootAction::LocalDisk);
    let nothing = node(BootAction::Nothing(
        "the node is manageable: nothing to boot".into(),
    ));
    let net = network();
    let vmedia = node(BootAction::VirtualMedia);
    // (settings, node, client) → (verdict, file, note contains)
    type Case<'a> = (
        &'a Settings,
        Option<&'a NodeBoot>,
        Kind,
        &'a str,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (&s, None, Kind::IpxeBios, "ignore", "", "is not enrolled"),
        (
            &allow,
            None,
            Kind::IpxeBios,
            "offer",
            "",
            "not enrolled: address only",
        ),
        (
            &s,
            Some(&local),
            Kind::IpxeBios,
            "offer",
            "",
            "local disk: no boot file",
        ),
        (&s, Some(&nothing), Kind::OvmfPxe, "offer", "", "manageable"),
        (
            &s,
            Some(&vmedia),
            Kind::IpxeBios,
            "ignore",
            "",
            "boots from virtual media",
        ),
        (
            &allow,
            Some(&vmedia),
            Kind::Udhcpc,
            "ignore",
            "",
            "DHCP does not answer it",
        ),
        (&s, Some(&net), Kind::Udhcpc, "offer", "", "address only"),
        (
            &s,
            Some(&net),
            Kind::IpxeUefi,
            "offer",
            "http://10.77.0.1:8080/boot.ipxe",
            "boot http",
        ),
    ];
    for (settings, who, kind, verdict, file, note) in cases {
        let mut l = pool();
        let o = auth(&request(kind, T::Discover, &[]), who, settings, &mut l, 0);
        assert_eq!(o.verdict, verdict, "{}", o.note);
        assert!(o.note.contains(note), "{} / {note}", o.note);
        if let Some(r) = &o.reply {
            assert_eq!(String::from_utf8_lossy(&r.msg.file), file, "{}", o.note);
            if file.is_empty() {
                assert_eq!(r.msg.siaddr, Ipv4Addr::UNSPECIFIED);
                assert!(r.msg.get(opt::VENDOR).is_none());
            }
        }
    }
}

#[test]
fn request_ack_nak_release_decline() {
    let s = settings(Mode::Authoritative);
    let who = network();
    let mut l = pool();
    let offer = auth(
        &request(Kind::IpxeBios, T::Discover, &[]),
        Some(&who),
        &s,
        &mut l,
        0,
    );
    let ip = reply(&offer).msg.yiaddr;
    let sel = |ip: Ipv4Addr, server: Ipv4Addr| {
        request(
            Kind::IpxeBios,
            T::Request,
            &[
                (opt::REQUESTED_IP, ip.octets().to_vec()),
                (opt::SERVER_ID, server.octets().to_vec()),
            ],
        )
    };
    // Another server chosen: silent, and the hold is let go.
    let o = auth(
        &sel(ip, Ipv4Addr::new(10, 77, 0, 2)),
        Some(&who),
        &s,
        &mut l,
        1,
    );
    assert_eq!(o.verdict, "ignore");
    assert!(o.note.contains("chose the DHCP server 10.77.0.2"));
    // Our offer taken.
    let o = auth(&sel(ip, SERVER), Some(&who), &s, &mut l, 2);
    let r = reply(&o);
    assert_eq!(
        (o.verdict, r.msg.message_type(), r.msg.yiaddr),
        ("ack", Some(T::Ack), ip)
    );
    assert_eq!(
        String::from_utf8_lossy(&r.msg.file),
        "http://10.77.0.1:8080/boot.ipxe"
    );
    // Asking for something else: NAK, broadcast, with a message.
    let other = Ipv4Addr::new(10, 77, 0, 250);
    let o = auth(&sel(other, SERVER), Some(&who), &s, &mut l, 3);
    let r = reply(&o);
    assert_eq!((o.verdict, r.dest), ("nak", Dest::Broadcast));
    assert!(r.msg.broadcast());
    assert_eq!(
        text(&r.msg, opt::MESSAGE).unwrap(),
        "10.77.0.250 is not in this server's range"
    );
    assert_eq!(r.msg.yiaddr, Ipv4Addr::UNSPECIFIED);
    // Renewal: ciaddr set, unicast back to it.
    let mut renew = request(Kind::Udhcpc, T::Request, &[]);
    renew.ciaddr = ip;
    let o = auth(&renew, Some(&who), &s, &mut l, 1000);
    let r = reply(&o);
    assert_eq!(r.dest, Dest::Unicast(SocketAddrV4::new(ip, 68)));
    assert_eq!(r.msg.ciaddr, ip);
    // Release, then the same address again.
    let mut rel = request(
        Kind::Udhcpc,
        T::Release,
        &[(opt::SERVER_ID, SERVER.octets().to_vec())],
    );
    rel.ciaddr = ip;
    let o = auth(&rel, Some(&who), &s, &mut l, 1001);
    assert_eq!(
        (o.verdict, o.reply.is_none()),
        ("release", true),
        "{}",
        o.note
    );
    let o = auth(
        &request(Kind::Udhcpc, T::Discover, &[]),
        Some(&who),
        &s,
        &mut l,
        1002,
    );
    assert_eq!(reply(&o).msg.yiaddr, ip);
    // Decline: a different address next time.
    let o = auth(&sel(ip, SERVER), Some(&who), &s, &mut l, 1003);
    assert_eq!(o.verdict, "ack");
    let dec = request(
        Kind::Udhcpc,
        T::Decline,
        &[
            (opt::REQUESTED_IP, ip.octets().to_vec()),
            (opt::SERVER_ID, SERVER.octets().to_vec()),
        ],
    );
    let o = auth(&dec, Some(&who), &s, &mut l, 1004);
    assert_eq!(o.verdict, "decline", "{}", o.note);
    let o = auth(
        &request(Kind::Udhcpc, T::Discover, &[]),
        Some(&who),
        &s,
        &mut l,
        1005,
    );
    assert_ne!(reply(&o).msg.yiaddr, ip);
    // INFORM: an ACK to ciaddr without an address or lease.
    let mut inf = request(Kind::Udhcpc, T::Inform, &[]);
    inf.ciaddr = Ipv4Addr::new(10, 77, 0, 42);
    let o = auth(&inf, Some(&who), &s, &mut l, 1006);
    let r = reply(&o);
    assert_eq!(
        (r.msg.message_type(), r.msg.yiaddr),
        (Some(T::Ack), Ipv4Addr::UNSPECIFIED)
    );
    assert!(r.msg.get(opt::LEASE_TIME).is_none());
    assert_eq!(r.dest, Dest::Unicast(SocketAddrV4::new(inf.ciaddr, 68)));
}

#[test]
fn relayed_requests_go_back_to_the_relay_with_option_82() {
    let s = settings(Mode::Authoritative);
    let who = network();
    let mut l = pool();
    let mut req = request(
        Kind::OvmfPxe,
        T::Discover,
        &[(opt::RELAY_AGENT, vec![1, 3, b'e', b't', b'1'])],
    );
    req.giaddr = Ipv4Addr::new(10, 77, 5, 1);
    let o = auth(&req, Some(&who), &s, &mut l, 0);
    let r = reply(&o);
    assert_eq!(r.dest, Dest::Relay(Ipv4Addr::new(10, 77, 5, 1)));
    assert_eq!(r.msg.giaddr, req.giaddr);
    assert_eq!(
        r.msg.get(opt::RELAY_AGENT),
        Some(&[1, 3, b'e', b't', b'1'][..])
    );
    let mut out = Vec::new();
    r.msg.emit(&mut out);
    let back = Message::parse(&out).unwrap();
    assert_eq!(
        back.options.last().map(|(c, _)| *c),
        Some(opt::RELAY_AGENT),
        "82 goes last"
    );
}

#[test]
fn two_clients_discovering_together_get_different_offers() {
    let s = settings(Mode::Authoritative);
    let who = network();
    let mut l = pool();
    let a = auth(
        &request(Kind::IpxeBios, T::Discover, &[]),
        Some(&who),
        &s,
        &mut l,
        0,
    );
    let mut other = request(Kind::IpxeBios, T::Discover, &[]);
    other.chaddr[5] = 0x02;
    let b = auth(&other, Some(&who), &s, &mut l, 0);
    assert_ne!(reply(&a).msg.yiaddr, reply(&b).msg.yiaddr);
}

#[test]
fn proxy_mode() {
    let s = settings(Mode::Proxy);
    let who = network();
    let proxy = |req: &Message, port: Port, who: Option<&NodeBoot>| {
        handle(
            req,
            port,
            SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 150), 68),
            who,
            &s,
            None,
            0,
        )
    };
    // UEFI PXE ROM: sent to port 4011 (no file, no 43), broadcast, no address.
    let o = proxy(
        &request(Kind::OvmfPxe, T::Discover, &[]),
        Port::Dhcp,
        Some(&who),
    );
    let r = reply(&o);
    assert_eq!(
        (r.msg.yiaddr, r.msg.siaddr, r.dest),
        (Ipv4Addr::UNSPECIFIED, SERVER, Dest::Broadcast)
    );
    assert!(r.msg.broadcast() && r.msg.file.is_empty() && r.msg.get(opt::VENDOR).is_none());
    assert_eq!(
        text(&r.msg, opt::VENDOR_CLASS).as_deref(),
        Some("PXEClient")
    );
    assert!(r.msg.get(opt::LEASE_TIME).is_none(), "a proxy never leases");
    assert!(r.msg.get(opt::CLIENT_UUID).is_some());
    // BIOS PXE ROM: the boot file in the offer with 43.6 = 8.
    let o = proxy(
        &request(Kind::BiosPxe, T::Discover, &[]),
        Port::Dhcp,
        Some(&who),
    );
    let r = reply(&o);
    assert_eq!(String::from_utf8_lossy(&r.msg.file), "undionly.kpxe");
    assert_eq!(r.msg.get(opt::VENDOR), Some(&[6, 1, 8, 255][..]));
    // iPXE: the script URL in the offer.
    let o = proxy(
        &request(Kind::IpxeUefi, T::Discover, &[]),
        Port::Dhcp,
        Some(&who),
    );
    assert_eq!(
        String::from_utf8_lossy(&reply(&o).msg.file),
        "http://10.77.0.1:8080/boot.ipxe"
    );
    // The REQUEST on 67 belongs to the address server.
    let o = proxy(
        &request(Kind::OvmfPxe, T::Request, &[]),
        Port::Dhcp,
        Some(&who),
    );
    assert_eq!(o.verdict, "ignore");
    // Port 4011: ACK with the file, unicast back to the sender.
    let mut req = request(Kind::OvmfPxe, T::Request, &[]);
    req.ciaddr = Ipv4Addr::new(10, 77, 0, 150);
    let o = proxy(&req, Port::Pxe, Some(&who));
    let r = reply(&o);
    assert_eq!(r.msg.message_type(), Some(T::Ack));
    assert_eq!(String::from_utf8_lossy(&r.msg.file), "snponly.efi");
    assert_eq!(r.dest, Dest::Unicast(SocketAddrV4::new(req.ciaddr, 68)));
    // Not for plain DHCP clients, unknown MACs or nodes with nothing to boot.
    let o = proxy(
        &request(Kind::Udhcpc, T::Discover, &[]),
        Port::Dhcp,
        Some(&who),
    );
    assert!(o.note.contains("PXE clients only"), "{}", o.note);
    let o = proxy(&request(Kind::OvmfPxe, T::Discover, &[]), Port::Dhcp, None);
    assert!(o.note.contains("not enrolled"), "{}", o.note);
    let local = node(BootAction::LocalDisk);
    let o = proxy(
        &request(Kind::OvmfPxe, T::Discover, &[]),
        Port::Dhcp,
        Some(&local),
    );
    assert_eq!(o.verdict, "ignore", "{}", o.note);
}

#[test]
fn junk_is_ignored_with_a_reason() {
    let s = settings(Mode::Authoritative);
    let who = network();
    let mut l = pool();
    let mut m = request(Kind::IpxeBios, T::Discover, &[]);
    m.options.retain(|(c, _)| *c != opt::MESSAGE_TYPE);
    assert!(auth(&m, Some(&who), &s, &mut l, 0)
        .note
        .contains("option 53"));
    let mut m = request(Kind::IpxeBios, T::Offer, &[]);
    assert!(auth(&m, Some(&who), &s, &mut l, 0)
        .note
        .contains("server message"));
    m.op = 2;
    assert!(auth(&m, Some(&who), &s, &mut l, 0)
        .note
        .contains("BOOTREQUEST"));
    let mut m = request(Kind::IpxeBios, T::Discover, &[]);
    m.hlen = 8;
    assert!(auth(&m, Some(&who), &s, &mut l, 0)
        .note
        .contains("not Ethernet"));
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn handle_all(bytes: &[u8]) {
        let Ok(m) = Message::parse(bytes) else { return };
        let who = network();
        for mode in [Mode::Authoritative, Mode::Proxy] {
            let mut s = settings(mode);
            s.unknown_allowed = true;
            for port in [Port::Dhcp, Port::Pxe] {
                for w in [None, Some(&who)] {
                    let mut l = pool();
                    let o = handle(&m, port, src(), w, &s, Some(&mut l), 5);
                    if let Some(r) = o.reply {
                        let mut out = Vec::new();
                        r.msg.emit(&mut out);
                        assert!(out.len() >= MIN_REPLY_LEN);
                        Message::parse(&out).expect("our replies parse");
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Arbitrary bytes: the handler never panics.
        #[test]
        fn arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..700)) {
            handle_all(&b);
        }

        /// A valid header with arbitrary options (lengths lie, codes repeat,
        /// values are junk): never a panic, and whatever parsed is handled.
        #[test]
        fn valid_header_arbitrary_options(
            kind in 1u8..=8,
            opts in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..12),
            lie in any::<bool>(),
            tail in proptest::collection::vec(any::<u8>(), 0..30),
        ) {
            let mut b = vec![0u8; 240];
            b[0] = 1;
            b[1] = 1;
            b[2] = 6;
            b[28..34].copy_from_slice(&MAC);
            b[236..240].copy_from_slice(&[99, 130, 83, 99]);
            b.extend_from_slice(&[53, 1, kind]);
            for (code, v) in &opts {
                b.push(*code);
                b.push(if lie { v.len() as u8 ^ 0x55 } else { v.len() as u8 });
                b.extend_from_slice(v);
            }
            b.extend_from_slice(&tail);
            handle_all(&b);
        }
    }
}

/// The firmware's own messages, captured from QEMU (vectors.rs): each OFFER
/// and ACK carries the right loader or script URL and the options.
#[test]
fn captured_firmware_requests_get_the_right_answers() {
    use crate::pxe::dhcp::vectors::{bytes, OVMF_IPXE, OVMF_PXE, SEABIOS_IPXE};
    let mut s = settings(Mode::Authoritative);
    s.server_ip = Ipv4Addr::new(10, 88, 250, 1);
    let who = network();
    let url = "http://10.77.0.1:8080/boot.ipxe";
    // (capture, what each client packet is, in order: (type, ipxe, arch, file))
    let cases: [(&[(&str, &str)], &str); 3] = [
        (SEABIOS_IPXE, "SeaBIOS iPXE"),
        (OVMF_IPXE, "OVMF iPXE"),
        (OVMF_PXE, "OVMF PXE"),
    ];
    let mut seen = Vec::new();
    for (capture, what) in cases {
        let mut l = Leases::new(
            Ipv4Addr::new(10, 88, 250, 100),
            Ipv4Addr::new(10, 88, 250, 199),
        );
        for (dir, hex) in capture.iter() {
            let b = bytes(hex);
            let m = Message::parse(&b).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(m.malformed.is_none(), "{what}: {:?}", m.malformed);
            if *dir == "67->68" {
                // What rackboot sent during the capture: padded, with option 54.
                assert!(b.len() >= MIN_REPLY_LEN, "{what}");
                assert_eq!(m.get_ip(opt::SERVER_ID), Some(s.server_ip));
                continue;
            }
            let c = Client::of(&m);
            let kind = m.message_type().unwrap();
            let o = handle(&m, Port::Dhcp, src(), Some(&who), &s, Some(&mut l), 10);
            let r = reply(&o);
            assert_eq!(
                r.msg.message_type(),
                Some(if kind == T::Discover {
                    T::Offer
                } else {
                    T::Ack
                }),
                "{what}: {}",
                o.note
            );
            let file = String::from_utf8_lossy(&r.msg.file).into_owned();
            if c.ipxe {
                assert_eq!(file, url, "{what}");
                assert_eq!(r.msg.get(opt::IPXE), Some(&[176, 1, 1][..]), "{what}");
                assert_eq!(text(&r.msg, opt::BOOTFILE).as_deref(), Some(url));
            } else {
                assert_eq!(c.arch(), Some(7), "{what}");
                assert_eq!(file, "snponly.efi", "{what}");
                assert_eq!(
                    text(&r.msg, opt::VENDOR_CLASS).as_deref(),
                    Some("PXEClient")
                );
                assert_eq!(r.msg.get(opt::VENDOR), Some(&[6, 1, 8, 255][..]));
                assert_eq!(r.msg.siaddr, s.server_ip);
                assert_eq!(String::from_utf8_lossy(&r.msg.sname), "10.88.250.1");
                // EDK2 asks for 66 and 67: both present.
                assert_eq!(text(&r.msg, opt::BOOTFILE).as_deref(), Some("snponly.efi"));
                assert_eq!(
                    text(&r.msg, opt::TFTP_SERVER).as_deref(),
                    Some("10.88.250.1")
                );
            }
            // Option 97 is echoed exactly; a broadcast request gets a broadcast answer.
            assert_eq!(
                r.msg.get(opt::CLIENT_UUID),
                m.get(opt::CLIENT_UUID),
                "{what}"
            );
            if m.broadcast() {
                assert_eq!(r.dest, Dest::Broadcast, "{what}");
            }
            let mut out = Vec::new();
            r.msg.emit(&mut out);
            assert!(
                out.len() >= MIN_REPLY_LEN && out.len() <= max_reply_len(&m),
                "{what}"
            );
            seen.push((what, kind, c.ipxe, c.arch()));
        }
    }
    // Every client type the issue names was in the captures.
    assert!(
        seen.contains(&("SeaBIOS iPXE", T::Discover, true, Some(0))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("SeaBIOS iPXE", T::Request, true, Some(0))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("OVMF iPXE", T::Discover, true, Some(7))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("OVMF iPXE", T::Request, true, Some(7))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("OVMF PXE", T::Discover, false, Some(7))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("OVMF PXE", T::Request, false, Some(7))),
        "{seen:?}"
    );
}
