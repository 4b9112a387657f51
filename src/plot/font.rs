//! The one font plotters needs for text, loaded at run time (no font is compiled
//! in). Without one, charts are still drawn — without text.

use std::path::PathBuf;
use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

/// Set this to a .ttf/.otf file to choose the font; set it to a missing path to draw without text.
pub const FONT_ENV: &str = "ACCEPTBENCH_FONT";

/// Where common distributions keep a plain sans-serif font.
const CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
];

/// The font family name charts use.
pub const FAMILY: &str = "sans-serif";

/// Registers a font once per process; returns whether text can be drawn.
pub fn ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let paths: Vec<PathBuf> = match std::env::var_os(FONT_ENV) {
            Some(p) => vec![PathBuf::from(p)],
            None => CANDIDATES.iter().map(PathBuf::from).collect(),
        };
        for path in paths {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            // plotters keeps fonts for the life of the process; so does this one.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if register_font(FAMILY, FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
        false
    })
}
