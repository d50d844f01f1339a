// Entry point of the benchmark's npm app; only its dependency tree matters to the benchmark.
const express = require('express');
const app = express();
app.get('/', (req, res) => res.json({ ok: true }));
module.exports = app;
