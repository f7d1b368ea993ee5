package s3store

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Test access to the raw client (the tamperer holding the credentials).

func (s *Store) Client() *s3.Client       { return s.c }
func (s *Store) Bucket() string           { return s.bucket }
func (s *Store) Retention() time.Duration { return s.retention }

var (
	NewClient = newClient
	Status    = status
)
