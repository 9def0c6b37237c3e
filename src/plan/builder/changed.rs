//! `--changed-since`: the images a change affects.

use globset::GlobSetBuilder;

use super::PlanBuilder;

impl PlanBuilder<'_> {
    /// By image index: the images whose paths match a changed file, the images
    /// that depend on them, and (without the base revision's sha) their
    /// dependencies. `None` without `--changed-since`.
    pub(super) fn affected_images(&self) -> Option<Vec<bool>> {
        let (_, files) = self.opts.changed_files.as_ref()?;
        let images = &self.spec.images;
        let changed: Vec<bool> = images
            .iter()
            .map(|img| {
                let mut b = GlobSetBuilder::new();
                for p in &img.paths {
                    if let Ok(g) = crate::spec::glob(p) {
                        b.add(g);
                    }
                }
                b.build()
                    .is_ok_and(|set| files.iter().any(|f| set.is_match(f)))
            })
            .collect();
        // Everything that depends on an affected image is affected.
        let graph = crate::plan::image_graph(self.spec);
        let affected = graph.closure_down(&changed);
        // Without the base revision's sha, an affected image's unchanged
        // dependencies have no image to build on but one made at this commit:
        // plan them too (with --skip-existing, only if not already pushed).
        Some(if self.opts.base_sha.is_none() {
            graph.closure_up(&affected)
        } else {
            affected
        })
    }
}
