# Portcullis: the proxy and admin API, against an external Postgres
# (DATABASE_URL), as docker-compose.yml runs it.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY bin bin
COPY cli cli
COPY core core
COPY proxy proxy
COPY blocklists blocklists
COPY access-log access-log
COPY safeguarding safeguarding
COPY admin-api admin-api
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production DATA_DIR=/var/lib/portcullis
# glibc keeps freed memory in the process without it (core/allocator-settings.ts).
ENV MALLOC_MMAP_THRESHOLD_=131072
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY migrations migrations
COPY blocklists/data blocklists/data
RUN mkdir -p /var/lib/portcullis && chown node:node /var/lib/portcullis
USER node
EXPOSE 3128 8080
VOLUME /var/lib/portcullis
CMD ["node", "dist/bin/portcullis.js", "start"]
