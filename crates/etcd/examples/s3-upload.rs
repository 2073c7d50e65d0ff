//! Uploads one local file to S3 as a multipart upload with `object_store`, the way a plain S3
//! client would after `etcdctl snapshot save`; the baseline of `scripts/bench-s3.sh`.
//!
//! Usage: `s3-upload ENDPOINT BUCKET KEY FILE`, credentials from AWS_ACCESS_KEY_ID and
//! AWS_SECRET_ACCESS_KEY. Part size and parts in flight are caasctl's defaults, or the values of
//! CAASCTL_S3_PART_MIB and CAASCTL_S3_UPLOAD_CONCURRENCY, so that both sides upload alike.

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, WriteMultipart};
use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, bucket, key, file] = args.as_slice() else {
        return Err("usage: s3-upload ENDPOINT BUCKET KEY FILE".into());
    };
    let store = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(std::env::var("AWS_ACCESS_KEY_ID")?)
        .with_secret_access_key(std::env::var("AWS_SECRET_ACCESS_KEY")?)
        .with_virtual_hosted_style_request(false)
        .with_client_options(ClientOptions::new().with_allow_http(true))
        .build()?;
    let upload = store.put_multipart(&Path::from(key.as_str())).await?;
    let (part_size, concurrency) = caasctl_etcd::s3::upload_tuning();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
    let mut input = tokio::fs::File::open(file).await?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        writer.wait_for_capacity(concurrency).await?;
        writer.write(&buffer[..n]);
    }
    writer.finish().await?;
    Ok(())
}
