//! A power-cut simulator for tests: a [`FaultInjector`] that mirrors every
//! durability step under one root directory into two images — what the
//! kernel would show (*live*) and what would survive a power cut
//! (*durable*) — and cuts the power after the N-th step.
//!
//! The model is the one POSIX promises, and no more:
//! * file contents become durable at `fsync`/`fdatasync` of that file (both
//!   persist the size too);
//! * a directory entry (a create, rename or unlink) becomes durable at
//!   `fsync` of the directory that holds it; a new directory's own entries
//!   need a sync of that directory, its name a sync of its parent;
//! * writes not yet synced at the cut may be lost entirely, or (with
//!   [`Survivors::Torn`]) survive page by page in any combination.
//!
//! After the cut every step fails with `EIO`, so nothing the doomed process
//! does afterwards reaches the images. [`PowerCut::materialize`] then writes
//! the durable image into a fresh directory, where the real store reopens it.
//!
//! Not modelled: a rename of a file over an existing one is treated as one
//! atomic entry change (as on ext4/xfs); data written through a path the
//! simulator never saw created is mirrored from what is on disk at the time
//! of [`PowerCut::new`].

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use super::{FaultAction, FaultInjector, IoStep};

const PAGE: u64 = 4096;

/// Which unsynced writes survive the cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Survivors {
    /// None: only what was synced.
    None,
    /// Each unsynced page of each file survives with probability 1/2,
    /// independently (seeded), so writes can land partly, torn and out of
    /// order. Entry changes not yet synced are still lost.
    Torn(u64),
}

#[derive(Debug, Clone)]
enum Node {
    File(u64),
    Dir(u64),
}

#[derive(Debug, Default)]
struct FileInode {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct DirInode {
    live: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
}

#[derive(Debug, Default)]
struct State {
    steps: u64,
    cut_after: Option<u64>,
    cut: bool,
    next_id: u64,
    files: HashMap<u64, FileInode>,
    dirs: HashMap<u64, DirInode>,
}

/// The simulator. Install it with `StoreOptions::fault_injector`.
#[derive(Debug)]
pub struct PowerCut {
    root: PathBuf,
    state: Mutex<State>,
}

const ROOT: u64 = 0;

impl PowerCut {
    /// Mirrors `root` (which must exist; its current contents are taken as
    /// durable) and cuts the power after `cut_after` steps (`None`: never).
    pub fn new(root: &Path, cut_after: Option<u64>) -> io::Result<Self> {
        let mut state = State { cut_after, next_id: ROOT + 1, ..State::default() };
        state.dirs.insert(ROOT, DirInode::default());
        import(&mut state, root, ROOT)?;
        let root = fs::canonicalize(root)?;
        Ok(Self { root, state: Mutex::new(state) })
    }

    /// Steps seen so far (including the failed ones after the cut).
    pub fn steps(&self) -> u64 {
        self.lock().steps
    }

    /// Whether the power has been cut.
    pub fn is_cut(&self) -> bool {
        self.lock().cut
    }

    /// Cuts the power now.
    pub fn cut_now(&self) {
        self.lock().cut = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the durable image (plus surviving unsynced pages) into `dest`,
    /// which must exist and be empty.
    pub fn materialize(&self, dest: &Path, survivors: Survivors) -> io::Result<()> {
        let state = self.lock();
        let mut rng = match survivors {
            Survivors::None => None,
            Survivors::Torn(seed) => Some(seed | 1),
        };
        write_dir(&state, ROOT, dest, &mut rng)
    }

    /// The path components of `path` below the root, if it is inside.
    fn relative(&self, path: &Path) -> Option<Vec<String>> {
        let abs = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().ok()?.join(path) };
        // Resolve the parent (which exists) to match the canonical root;
        // the last component may not exist yet.
        let parent = abs.parent()?;
        let name = abs.file_name()?.to_str()?.to_string();
        let parent = fs::canonicalize(parent).ok().or_else(|| Some(parent.to_path_buf()))?;
        let rel = parent.strip_prefix(&self.root).ok()?;
        let mut out: Vec<String> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => s.to_str().map(str::to_string),
                _ => None,
            })
            .collect();
        out.push(name);
        Some(out)
    }
}

fn import(state: &mut State, dir: &Path, id: u64) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let new_id = state.next_id;
        state.next_id += 1;
        let node = if entry.file_type()?.is_dir() {
            state.dirs.insert(new_id, DirInode::default());
            import(state, &entry.path(), new_id)?;
            Node::Dir(new_id)
        } else {
            let bytes = fs::read(entry.path())?;
            state.files.insert(new_id, FileInode { live: bytes.clone(), durable: bytes });
            Node::File(new_id)
        };
        let d = state.dirs.get_mut(&id).expect("parent imported first");
        d.live.insert(name.clone(), node.clone());
        d.durable.insert(name, node);
    }
    Ok(())
}

fn next_random(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

fn write_dir(state: &State, id: u64, dest: &Path, rng: &mut Option<u64>) -> io::Result<()> {
    let dir = &state.dirs[&id];
    for (name, node) in &dir.durable {
        let path = dest.join(name);
        match node {
            Node::Dir(d) => {
                fs::create_dir(&path)?;
                write_dir(state, *d, &path, rng)?;
            }
            Node::File(f) => {
                let inode = &state.files[f];
                let mut bytes = inode.durable.clone();
                if let Some(rng) = rng.as_mut() {
                    // Unsynced pages survive one by one; the file's length is
                    // the durable one or the live one, at random.
                    if next_random(rng).is_multiple_of(2) {
                        bytes.resize(inode.live.len(), 0);
                    }
                    let pages = (bytes.len() as u64).div_ceil(PAGE);
                    for p in 0..pages {
                        let start = (p * PAGE) as usize;
                        let end = (start + PAGE as usize).min(bytes.len());
                        let live = inode.live.get(start..end.min(inode.live.len()));
                        if let Some(live) = live
                            && live != &bytes[start..start + live.len()]
                            && next_random(rng).is_multiple_of(2)
                        {
                            bytes[start..start + live.len()].copy_from_slice(live);
                        }
                    }
                }
                fs::write(&path, bytes)?;
            }
        }
    }
    Ok(())
}

impl State {
    fn dir_of(&self, components: &[String]) -> Option<u64> {
        let mut id = ROOT;
        for c in components {
            match self.dirs.get(&id)?.live.get(c)? {
                Node::Dir(d) => id = *d,
                Node::File(_) => return None,
            }
        }
        Some(id)
    }

    fn lookup(&self, components: &[String]) -> Option<(u64, String, Node)> {
        let (name, parent) = components.split_last()?;
        let dir = self.dir_of(parent)?;
        let node = self.dirs.get(&dir)?.live.get(name)?.clone();
        Some((dir, name.clone(), node))
    }

    fn file_mut(&mut self, components: &[String]) -> Option<&mut FileInode> {
        match self.lookup(components)? {
            (_, _, Node::File(f)) => self.files.get_mut(&f),
            _ => None,
        }
    }

    fn apply(&mut self, step: &IoStep<'_>, rel: &dyn Fn(&Path) -> Option<Vec<String>>) {
        match *step {
            IoStep::Write { path, offset, data, .. } => {
                if let Some(f) = rel(path).and_then(|c| self.file_mut(&c)) {
                    let end = offset as usize + data.len();
                    if f.live.len() < end {
                        f.live.resize(end, 0);
                    }
                    f.live[offset as usize..end].copy_from_slice(data);
                }
            }
            IoStep::SetLen { path, len } => {
                if let Some(f) = rel(path).and_then(|c| self.file_mut(&c)) {
                    f.live.resize(len as usize, 0);
                }
            }
            IoStep::Allocate { path, offset, len } => {
                if let Some(f) = rel(path).and_then(|c| self.file_mut(&c)) {
                    let end = (offset + len) as usize;
                    if f.live.len() < end {
                        f.live.resize(end, 0);
                    }
                }
            }
            IoStep::SyncData { path } | IoStep::SyncAll { path } => {
                if let Some(f) = rel(path).and_then(|c| self.file_mut(&c)) {
                    f.durable = f.live.clone();
                }
            }
            IoStep::Create { path } => {
                if let Some(c) = rel(path)
                    && let Some((name, parent)) = c.split_last()
                    && let Some(dir) = self.dir_of(parent)
                {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.files.insert(id, FileInode::default());
                    self.dirs.get_mut(&dir).expect("looked up").live.insert(name.clone(), Node::File(id));
                }
            }
            IoStep::CreateDir { path } => {
                if let Some(c) = rel(path)
                    && let Some((name, parent)) = c.split_last()
                    && let Some(dir) = self.dir_of(parent)
                {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.dirs.insert(id, DirInode::default());
                    self.dirs.get_mut(&dir).expect("looked up").live.insert(name.clone(), Node::Dir(id));
                }
            }
            IoStep::Rename { from, to } => {
                if let (Some(f), Some(t)) = (rel(from), rel(to))
                    && let Some((from_dir, from_name, node)) = self.lookup(&f)
                    && let Some((to_name, to_parent)) = t.split_last()
                    && let Some(to_dir) = self.dir_of(to_parent)
                {
                    self.dirs.get_mut(&from_dir).expect("looked up").live.remove(&from_name);
                    self.dirs.get_mut(&to_dir).expect("looked up").live.insert(to_name.clone(), node);
                }
            }
            IoStep::Remove { path } => {
                if let Some((dir, name, _)) = rel(path).and_then(|c| self.lookup(&c)) {
                    self.dirs.get_mut(&dir).expect("looked up").live.remove(&name);
                }
            }
            IoStep::SyncDir { path } => {
                if let Some(d) = rel(path).and_then(|c| self.dir_of(&c)).and_then(|id| self.dirs.get_mut(&id)) {
                    d.durable = d.live.clone();
                }
            }
        }
    }
}

impl FaultInjector for PowerCut {
    fn before(&self, step: IoStep<'_>) -> FaultAction {
        let mut state = self.lock();
        state.steps += 1;
        if state.cut_after.is_some_and(|n| state.steps > n) {
            state.cut = true;
        }
        if state.cut {
            return FaultAction::Fail(io::Error::from_raw_os_error(5));
        }
        let root = self.root.clone();
        // `Some(vec![])` is the root itself; `None` is outside it.
        let rel = |p: &Path| -> Option<Vec<String>> {
            if fs::canonicalize(p).ok().as_deref() == Some(root.as_path()) {
                return Some(Vec::new());
            }
            self.relative(p)
        };
        state.apply(&step, &rel);
        FaultAction::Proceed
    }
}
