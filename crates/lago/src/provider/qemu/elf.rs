//! Tiny x86-64 ELF executables that lago writes itself for qemu to boot: the KVM probe's marker
//! program ([`super::accel::marker_elf`]) and a fork's stub kernel ([`super::freeze::pvh_stub`]).

/// The size of the ELF header.
pub const HEADER: usize = 64;
/// The size of one program header.
pub const PROGRAM_HEADER: usize = 56;

/// One program header: `size` bytes at `offset` of the file, loaded at `addr` (virtual and
/// physical), as large in memory as in the file.
pub struct Segment {
    /// `p_type` (1: `PT_LOAD`, 4: `PT_NOTE`).
    pub kind: u32,
    /// `p_flags` (4: R, 5: R + X).
    pub flags: u32,
    /// Where its bytes are in the file.
    pub offset: usize,
    /// Where it is loaded.
    pub addr: u64,
    /// Its size.
    pub size: usize,
    /// Its alignment.
    pub align: u64,
}

/// An executable (`ET_EXEC`, x86-64, SysV) entered at `entry`: its header, `segments`'
/// program headers, then `body` (so the body starts at `HEADER + segments.len() *
/// PROGRAM_HEADER`). No section headers.
pub fn executable(entry: u64, segments: &[Segment], body: &[u8]) -> Vec<u8> {
    let mut elf: Vec<u8> = Vec::new();
    elf.extend([0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // 64-bit, LE, SysV
    elf.extend(2u16.to_le_bytes()); // ET_EXEC
    elf.extend(0x3eu16.to_le_bytes()); // x86-64
    elf.extend(1u32.to_le_bytes()); // version
    elf.extend(entry.to_le_bytes()); // entry
    elf.extend((HEADER as u64).to_le_bytes()); // program headers
    elf.extend(0u64.to_le_bytes()); // no section headers
    elf.extend(0u32.to_le_bytes()); // flags
    elf.extend((HEADER as u16).to_le_bytes()); // header size
    elf.extend((PROGRAM_HEADER as u16).to_le_bytes()); // program header size
    elf.extend((segments.len() as u16).to_le_bytes()); // program headers
    elf.extend([64, 0, 0, 0, 0, 0]); // section header size, count, names
    for s in segments {
        elf.extend(s.kind.to_le_bytes());
        elf.extend(s.flags.to_le_bytes());
        elf.extend((s.offset as u64).to_le_bytes());
        elf.extend(s.addr.to_le_bytes()); // virtual address
        elf.extend(s.addr.to_le_bytes()); // physical address
        elf.extend((s.size as u64).to_le_bytes()); // file size
        elf.extend((s.size as u64).to_le_bytes()); // memory size
        elf.extend(s.align.to_le_bytes());
    }
    elf.extend(body);
    elf
}
