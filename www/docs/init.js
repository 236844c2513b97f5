// init.js -- the API reference at /docs/: Swagger UI (swagger-ui-dist from
// npm, served from /vendor/, nothing from the internet) over the document
// the API itself serves at /api/openapi.json.
'use strict';
window.addEventListener('DOMContentLoaded', function () {
  // eslint-disable-next-line no-undef
  window.ui = SwaggerUIBundle({
    url: '/api/openapi.json',
    dom_id: '#swagger',
    deepLinking: true,
    tryItOutEnabled: false,
    onComplete: function () {
      // Swagger UI leaves its servers menu without a label.
      var servers = document.getElementById('servers');
      if (servers) servers.setAttribute('aria-label', 'Server');
    },
  });
});
