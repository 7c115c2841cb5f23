import { createServer, type Server } from 'node:http';
import type { NodeMetrics } from './registry.js';

/** Plain-HTTP listener serving `GET /metrics` in the Prometheus text format (DESIGN §6). */
export function createMetricsServer(metrics: NodeMetrics): Server {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    metrics
      .render()
      .then((text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      })
      .catch((err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${err.message}\n`);
      });
  });
  server.keepAliveTimeout = 5_000;
  return server;
}
