# One image for every slap service: `docker compose` (docker-compose.yml) picks the service with
# its command (`master`, `allocator`, `node`, or any other `slap` command). TypeScript runs
# through tsx: no build step.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY . .
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
ENTRYPOINT ["node", "bin/slap.mjs"]
CMD ["--help"]
