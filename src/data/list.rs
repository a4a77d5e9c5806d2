//! [`ImageList`]: the images of a folder or archive listed but not decoded, decoded a range at
//! a time (for encoding datasets larger than memory into a code store).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::dataset::ImageDataset;
use super::load::{decode_to_memory, list, listing_key, report, LoadOptions};
use super::report::Skipped;
use super::source::{Entry, Source};
use crate::error::Result;

/// The images of a folder or archive, listed but not decoded ([`list_images`]): decoded a range
/// at a time ([`ImageList::decode`]), for datasets larger than memory. Only the list of names
/// is held.
#[derive(Debug)]
pub struct ImageList {
    source: Source,
    entries: Vec<Entry>,
    skipped: Vec<Skipped>,
    options: LoadOptions,
    fingerprint: u64,
    /// With [`LoadOptions::class_folders`]: the classes and each listed file's label.
    labels: Option<(Arc<[String]>, Vec<u32>)>,
}

/// Lists the images under `path` as [`load_images_with`](super::load_images_with) would load
/// them (same options: split, limit, CelebA-HQ layout, strictness), without decoding any.
pub fn list_images(path: impl AsRef<Path>, options: &LoadOptions) -> Result<ImageList> {
    let (source, entries, skipped, _) = list(path.as_ref(), options)?;
    let fingerprint = listing_key(&source, &entries, options).1;
    let labels = match options.class_folders {
        true => {
            let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
            let folders = super::classes::list_folders(source.path())?;
            let (classes, of) = super::classes::class_folders(source.path(), &names, &folders)?;
            Some((classes.into(), of))
        }
        false => None,
    };
    Ok(ImageList {
        source,
        entries,
        skipped,
        options: options.clone(),
        fingerprint,
        labels,
    })
}

impl ImageList {
    /// Number of image files listed (some may still fail to decode).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false: an empty listing is a [`Error::NoImages`](crate::error::Error::NoImages).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The folder or archive.
    pub fn source(&self) -> &Path {
        self.source.path()
    }

    /// The side the images are decoded at.
    pub fn resolution(&self) -> u32 {
        self.options.resolution
    }

    /// Files left out while listing (not images, missing from the split).
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// A stable key of what is listed (paths, sizes, modification times, resolution): equal
    /// keys mean the same images.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The classes of a listing with [`LoadOptions::class_folders`] (sorted, as
    /// [`ImageDataset::classes`]); empty otherwise.
    pub fn classes(&self) -> &[String] {
        self.labels.as_ref().map_or(&[], |(classes, _)| classes)
    }

    /// Decodes files `range` of the listing (clamped to it), in parallel. Files that fail to
    /// decode are left out and reported in the dataset's [`LoadReport`](super::LoadReport)
    /// (strict options: the first is an error), so the result may hold fewer images, or none.
    /// With class folders the images carry their labels among all the listing's
    /// [`classes`](Self::classes).
    pub fn decode(&self, range: std::ops::Range<usize>) -> Result<ImageDataset> {
        let start = Instant::now();
        let end = range.end.min(self.entries.len());
        let first = range.start.min(end);
        let entries = &self.entries[first..end];
        let (names, pixels, skipped) = decode_to_memory(&self.source, entries, &self.options)?;
        // The decoded names are the listed ones in order, less the files that failed.
        let labels = self.labels.as_ref().map(|(classes, of)| {
            let mut listed = entries.iter().zip(&of[first..end]);
            let of: Vec<u32> = names
                .iter()
                .map(|name| {
                    let (_, &label) = listed
                        .find(|(entry, _)| &entry.name == name)
                        .expect("decoded names follow the listing");
                    label
                })
                .collect();
            (classes.clone(), of)
        });
        let report = report(&self.source, names.len(), skipped, false, None, start);
        let dataset = ImageDataset::from_parts(self.options.resolution, names, pixels, report);
        Ok(match labels {
            Some((classes, of)) => dataset.with_labels(classes, of),
            None => dataset,
        })
    }
}
