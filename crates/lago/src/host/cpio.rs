//! A writer of `newc` cpio archives: the format of Linux initramfs images (the `tiny` template's,
//! and the KVM probe's).

/// A `newc` cpio archive being written.
#[derive(Default)]
pub struct Cpio {
    data: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn header(&mut self, name: &str, mode: u32, size: usize, rdev: (u32, u32)) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let h = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino, mode, 0, 0, 1, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0
        );
        self.data.extend_from_slice(h.as_bytes());
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
    }

    /// Adds a directory.
    pub fn dir(&mut self, name: &str) {
        self.header(name, 0o040755, 0, (0, 0));
    }

    /// Adds a regular file.
    pub fn file(&mut self, name: &str, mode: u32, content: &[u8]) {
        self.header(name, 0o100000 | mode, content.len(), (0, 0));
        self.data.extend_from_slice(content);
        self.pad();
    }

    /// Adds a character device node (the kernel creates it when it unpacks the archive).
    pub fn char_device(&mut self, name: &str, mode: u32, major: u32, minor: u32) {
        self.header(name, 0o020000 | mode, 0, (major, minor));
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0, (0, 0));
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_aligned_and_terminated() {
        let mut c = Cpio::default();
        c.dir("bin");
        c.file("init", 0o755, b"#!/bin/sh\n");
        c.char_device("dev/console", 0o600, 5, 1);
        let data = c.finish();
        assert!(data.starts_with(b"070701"));
        assert!(data.len().is_multiple_of(4));
        assert!(data.windows(10).any(|w| w == b"TRAILER!!!"));
        // The console's header: mode 020600, rdevmajor 5, rdevminor 1.
        let text = String::from_utf8_lossy(&data);
        let at = text.find("dev/console").unwrap() - 110;
        let header = &text[at..at + 110];
        assert_eq!(&header[14..22], "00002180");
        assert_eq!((&header[78..86], &header[86..94]), ("00000005", "00000001"));
    }
}
