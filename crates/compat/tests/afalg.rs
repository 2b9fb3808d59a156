//! `sendmsg_afalg`. This kernel may lack AF_ALG: the argument checks always run; the
//! real cipher test runs only where AF_ALG exists and says so when it cannot.
mod common;
use common::*;

use ferry_compat::{afalg_available, sendmsg_afalg, AlgOp};
use std::io::{ErrorKind, IoSlice};

#[test]
fn a_non_socket_is_invalid_input() {
    let _g = serial();
    let (_r, w) = std::io::pipe().unwrap();
    let e = sendmsg_afalg(&w, &[IoSlice::new(b"x")], AlgOp::Encrypt, None, None, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("not a socket"), "{e}");
}

#[test]
fn another_family_is_refused_clearly() {
    let _g = serial();
    let before = fd_count();
    let (c, s) = tcp_pair();
    let e = sendmsg_afalg(
        &c,
        &[IoSlice::new(b"x")],
        AlgOp::Decrypt,
        Some(&[0; 16]),
        Some(0),
        0,
    )
    .unwrap_err();
    if afalg_available() {
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    } else {
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("no AF_ALG"), "{e}");
    }
    assert!(e.to_string().contains("sock"), "{e}");
    drop((c, s));
    assert_eq!(fd_count(), before);
}

#[test]
fn aes_cbc_encrypts_a_known_vector_where_af_alg_exists() {
    let _g = serial();
    if !afalg_available() {
        eprintln!(
            "SKIPPED aes_cbc_encrypts_a_known_vector_where_af_alg_exists: \
             this kernel has no AF_ALG (socket(AF_ALG) fails)"
        );
        return;
    }
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket/bind/setsockopt/accept calls on fds we own; the sockaddr
    // and key live for each call.
    let op = unsafe {
        let tfm = libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0);
        assert!(tfm >= 0);
        let tfm = OwnedFd::from_raw_fd(tfm);
        let mut sa: libc::sockaddr_alg = std::mem::zeroed();
        sa.salg_family = libc::AF_ALG as u16;
        sa.salg_type[..8].copy_from_slice(b"skcipher");
        sa.salg_name[..8].copy_from_slice(b"cbc(aes)");
        let r = libc::bind(
            tfm.as_raw_fd(),
            (&sa as *const libc::sockaddr_alg).cast(),
            std::mem::size_of::<libc::sockaddr_alg>() as u32,
        );
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        // NIST SP 800-38A F.2.1 CBC-AES128.Encrypt, first block
        let key: [u8; 16] = [
            0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf,
            0x4f, 0x3c,
        ];
        let r = libc::setsockopt(
            tfm.as_raw_fd(),
            libc::SOL_ALG,
            libc::ALG_SET_KEY,
            key.as_ptr().cast(),
            16,
        );
        assert_eq!(r, 0);
        let op = libc::accept(tfm.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut());
        assert!(op >= 0);
        OwnedFd::from_raw_fd(op)
    };
    let iv: Vec<u8> = (0..16).collect();
    let pt: [u8; 16] = [
        0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17,
        0x2a,
    ];
    let n = sendmsg_afalg(
        &op,
        &[IoSlice::new(&pt)],
        AlgOp::Encrypt,
        Some(&iv),
        None,
        0,
    )
    .unwrap();
    assert_eq!(n, 16);
    let mut ct = [0u8; 16];
    // SAFETY: `ct` is valid for 16 bytes of writes.
    let r = unsafe { libc::read(op.as_raw_fd(), ct.as_mut_ptr().cast(), 16) };
    assert_eq!(r, 16);
    assert_eq!(
        ct,
        [
            0x76, 0x49, 0xab, 0xac, 0x81, 0x19, 0xb2, 0x46, 0xce, 0xe9, 0x8e, 0x9b, 0x12, 0xe9,
            0x19, 0x7d
        ]
    );
}
