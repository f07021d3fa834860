//! Event files for the offline commands: plain or gzip'd NDJSON (told apart by
//! the gzip magic bytes, not the name), "-" for stdin, with an optional
//! progress bar counting the bytes read from disk.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use flate2::bufread::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar over the total size of `paths`, drawn only when stderr is a
/// terminal and `wanted`; hidden otherwise (every call on it is then a no-op).
pub fn progress(paths: &[PathBuf], wanted: bool) -> ProgressBar {
    if !wanted || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let sizes: Option<u64> = paths
        .iter()
        .map(|p| std::fs::metadata(p).ok().map(|m| m.len()))
        .sum();
    let bar = match sizes {
        Some(total) if !paths.iter().any(|p| p == Path::new("-")) => {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
                )
                .expect("the template is valid"),
            );
            bar
        }
        _ => ProgressBar::new_spinner(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    bar
}

/// Opens `path` ("-": stdin) for reading NDJSON, decompressing gzip.
pub fn open(path: &Path, bar: &ProgressBar) -> anyhow::Result<Box<dyn Read>> {
    let raw: Box<dyn Read> = if path == Path::new("-") {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?)
    };
    let mut reader = BufReader::with_capacity(
        256 * 1024,
        Counted {
            inner: raw,
            bar: bar.clone(),
        },
    );
    let head = reader
        .fill_buf()
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

/// Counts the bytes read from the source into the progress bar.
struct Counted<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_is_recognised_by_its_bytes_and_plain_text_passes_through() {
        let dir = std::env::temp_dir().join(format!("forewarn-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = b"{\"a\":1}\n{\"b\":2}\n";
        let plain = dir.join("events.ndjson");
        std::fs::write(&plain, text).unwrap();
        let packed = dir.join("events.bin");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text).unwrap();
        std::fs::write(&packed, gz.finish().unwrap()).unwrap();
        for p in [&plain, &packed] {
            let mut got = Vec::new();
            open(p, &ProgressBar::hidden())
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(got, text, "{}", p.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
