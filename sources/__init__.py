"""Traffic from elsewhere than POST /domains: access logs and Prometheus endpoints."""
