//! Scheduler efficiency (in progress).

use crate::Result;

pub fn run(_quick: bool) -> Result<()> {
    Ok(())
}
