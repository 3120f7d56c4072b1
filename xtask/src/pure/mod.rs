//! The pure core: strings and data in, data out. Nothing here touches files, processes or the
//! network; the commands around it do the I/O.

pub mod audit;
pub mod base_images;
pub mod cleanup;
pub mod ds0;
pub mod ec2;
pub mod guard;
pub mod image_root;
pub mod json;
pub mod leftovers;
pub mod legacy;
pub mod mask;
pub mod matrix;
pub mod packer_log;
pub mod preflight;
pub mod protect;
pub mod refname;
pub mod refusal;
pub mod registry;
pub mod release;
pub mod render;
pub mod report;
pub mod retire;
pub mod run;
pub mod sha256;
pub mod template;
pub mod time;
pub mod verdict;
pub mod version;
