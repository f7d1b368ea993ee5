package s3store

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// List implements archive.ObjectLister: the keys <prefix>sha256/<hex>
// of the bucket's current objects (a deleted key's versions are not
// listed).
func (s *Store) List(ctx context.Context, fn func(digest [32]byte) error) error {
	prefix := s.prefix + "sha256/"
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3store: list %s: %w", s.where(prefix), err)
		}
		for _, o := range page.Contents {
			if o.Key == nil {
				continue
			}
			name, ok := strings.CutPrefix(*o.Key, prefix)
			var d [32]byte
			if !ok || len(name) != 64 || strings.ToLower(name) != name {
				continue
			}
			if _, err := hex.Decode(d[:], []byte(name)); err != nil {
				continue
			}
			if err := fn(d); err != nil {
				return err
			}
		}
	}
	return nil
}
