use std::cell::Cell;
use std::fs::File;

use memmap2::{Mmap, UncheckedAdvice};

pub struct Map {
    map: Mmap,
    released: Cell<usize>,
}

impl Map {
    pub fn new(file: &File) -> std::io::Result<Map> {
        // SAFETY: the mapping is read-only and private. Like every reader of a file, we
        // assume nobody truncates the plan file while plan-gate reads it (a truncation would
        // raise SIGBUS, not corrupt memory silently). Pass one already read it whole.
        let map = unsafe { Mmap::map(file)? };
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Map {
            map,
            released: Cell::new(0),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The next release starts at `at` again (a reader went back to bytes it released).
    pub fn rewind(&self, at: usize) {
        self.released.set(at.min(self.released.get()));
    }

    /// Everything before `upto` (an offset into the mapping) has been consumed.
    pub fn release_before(&self, upto: usize, step: usize) {
        let done = self.released.get();
        if upto <= done + step || upto > self.map.len() {
            return;
        }
        let page = 4096;
        let done = done.div_ceil(page) * page;
        let end = (upto / page) * page;
        if end <= done {
            return;
        }
        // SAFETY: MADV_DONTNEED on a private, read-only, never-written file mapping only
        // drops clean pages; touching them again re-reads identical bytes from the file, so
        // any reference into the range stays valid.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, done, end - done)
        };
        self.released.set(end);
    }
}
