//! The demo over the network: a swap area on an NBD export (`--nbd URI`),
//! through the crate's `nbd` backend. The export is a block device to
//! swap: its header page is read (or, on an export without one, written:
//! a mkswap-format header for the whole export), and the area is the one
//! extent `[0, min(last_page + 1, export pages))`, as `setup_swap_extents`
//! gives a block device.

use std::sync::Arc;

use iov_iter::PAGE_SIZE;
use iov_iter::backend::nbd::NbdDevice;
use iov_iter::buf::{AlignedBuf, OwnedIter};
use iov_iter::dio::DirectIo;
use iov_iter::kiocb::{Kiocb, Submitted};
use iov_iter::{Dest, Source};
use iov_iter_swap::header::{AreaInfo, HeaderError, Label, SwapHeader, Uuid};

/// An NBD export holding a swap area.
pub struct NbdArea {
    /// The connection(s), shared by every mode's swap device.
    pub dev: Arc<NbdDevice>,
    /// The header found or written.
    pub header: SwapHeader,
    /// Whether the header was written now.
    pub created: bool,
}

impl NbdArea {
    /// Pages of the area, header included.
    pub fn max_pages(&self) -> u64 {
        self.header.max_pages()
    }
}

fn io<T>(what: &str, r: iov_iter::Result<T>) -> Result<T, String> {
    r.map_err(|e| {
        let detail = iov_iter::backend::nbd::last_error_message().unwrap_or_default();
        format!("{what}: {e} {detail}")
    })
}

/// Connects to `uri` (as many connections as the server allows, up to 4)
/// and finds or writes the swap header.
pub fn open(uri: &str) -> Result<NbdArea, String> {
    let dev = io(
        &format!("connecting to {uri}"),
        NbdDevice::builder().connections(4).connect(uri),
    )?;
    let dev = Arc::new(dev);
    let size = dev.info().size;
    let area = AreaInfo {
        size_pages: Some(size / PAGE_SIZE as u64),
        regular_file: false,
    };
    let buf = io(
        "a page buffer",
        AlignedBuf::for_dio(dev.dio_align(), PAGE_SIZE),
    )?;
    let mut kiocb = Kiocb::new_sync_with(0, OwnedIter::<Dest, _>::new(buf));
    if io("reading the header page", dev.submit(&mut kiocb))? != Submitted::Done(PAGE_SIZE) {
        return Err("the export is smaller than a page".into());
    }
    let page: [u8; PAGE_SIZE] = kiocb
        .take_buf()
        .map(|b| b.into_inner())
        .and_then(|b| b.as_ref().try_into().ok())
        .ok_or("the export is smaller than a page")?;
    match SwapHeader::parse(&page, area) {
        Ok(header) => Ok(NbdArea {
            dev,
            header,
            created: false,
        }),
        Err(HeaderError::NoSignature) => {
            let label = Label::new("iov-iter-nbd").map_err(|e| e.to_string())?;
            let header = SwapHeader::new(size / PAGE_SIZE as u64, Uuid::NIL, label)
                .map_err(|e| format!("a swap header for {size} bytes: {e}"))?;
            let buf = io(
                "a page buffer",
                AlignedBuf::from_slice(dev.dio_align().mem as usize, &header.to_page()),
            )?;
            let mut kiocb = Kiocb::new_sync_with(0, OwnedIter::<Source, _>::new(buf));
            if io("writing the header page", dev.submit(&mut kiocb))? != Submitted::Done(PAGE_SIZE)
            {
                return Err("writing the header page: short write".into());
            }
            Ok(NbdArea {
                dev,
                header,
                created: true,
            })
        }
        Err(e) => Err(format!("the export's swap header: {e}")),
    }
}
